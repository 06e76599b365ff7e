"""SQLModel tables, one module per aggregate. Importing this package registers every table."""

from crm.models.analytics import (
    AnalyticsRun,
    ChurnScore,
    CustomerSegment,
    CustomerValue,
    Finding,
)
from crm.models.audit import AuditChainHead, AuditEvent
from crm.models.base import (
    Channel,
    ContactKind,
    CustomerStatus,
    DealStatus,
    Direction,
    FollowUpKind,
    FollowUpStatus,
    Role,
    UTCDateTime,
    utcnow,
)
from crm.models.campaign import Campaign, CampaignMember, CampaignOptOut
from crm.models.customer import (
    ContactPoint,
    Customer,
    CustomerCreate,
    CustomerPublic,
    CustomerUpdate,
)
from crm.models.deal import Deal, DealCreate, DealStageChange
from crm.models.digest import DigestOptOut
from crm.models.duplicates import CustomerMerge, DuplicateDismissal
from crm.models.followup import FollowUp
from crm.models.interaction import Interaction, InteractionCreate
from crm.models.mail import interactions_external_id_index  # noqa: F401  (registers the index)
from crm.models.ops import (
    ChannelLink,
    DigestRun,
    Lease,
    MailboxState,
    QuarantinedMessage,
    SeenRequest,
)
from crm.models.privacy import ForgottenContact, StoreKey
from crm.models.product import Product, ProductSuggestion, PurchaseLine
from crm.models.topics import CustomerTopics, SegmentTerm, SegmentTopic, TopicTerm
from crm.models.survey import Survey
from crm.models.user import User, UserCreate

__all__ = [
    "CustomerTopics",
    "SegmentTerm",
    "SegmentTopic",
    "TopicTerm",
    "AnalyticsRun",
    "ChurnScore",
    "CustomerSegment",
    "CustomerValue",
    "Finding",
    "AuditChainHead",
    "AuditEvent",
    "Campaign",
    "CampaignMember",
    "CampaignOptOut",
    "Channel",
    "ChannelLink",
    "ContactKind",
    "ContactPoint",
    "Customer",
    "CustomerCreate",
    "CustomerMerge",
    "CustomerPublic",
    "CustomerStatus",
    "CustomerUpdate",
    "Deal",
    "DealCreate",
    "DealStageChange",
    "DealStatus",
    "DigestOptOut",
    "DigestRun",
    "DuplicateDismissal",
    "Direction",
    "FollowUp",
    "ForgottenContact",
    "FollowUpKind",
    "FollowUpStatus",
    "Interaction",
    "InteractionCreate",
    "Lease",
    "SeenRequest",
    "Survey",
    "StoreKey",
    "MailboxState",
    "Product",
    "ProductSuggestion",
    "PurchaseLine",
    "QuarantinedMessage",
    "Role",
    "User",
    "UserCreate",
    "UTCDateTime",
    "utcnow",
]
