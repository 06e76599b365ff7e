"""SQLModel tables, one module per aggregate. Importing this package registers every table."""

from crm.models.analytics import AnalyticsRun, ChurnScore, CustomerSegment, Finding
from crm.models.audit import AuditEvent
from crm.models.base import (
    Channel,
    ContactKind,
    CustomerStatus,
    DealStatus,
    Direction,
    FollowUpStatus,
    Role,
    UTCDateTime,
    utcnow,
)
from crm.models.customer import (
    ContactPoint,
    Customer,
    CustomerCreate,
    CustomerPublic,
    CustomerUpdate,
)
from crm.models.digest import DigestOptOut
from crm.models.deal import Deal, DealCreate, DealStageChange
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
from crm.models.product import Product, ProductSuggestion, PurchaseLine
from crm.models.user import User, UserCreate

__all__ = [
    "AnalyticsRun",
    "ChurnScore",
    "CustomerSegment",
    "Finding",
    "AuditEvent",
    "Channel",
    "ChannelLink",
    "ContactKind",
    "ContactPoint",
    "Customer",
    "CustomerCreate",
    "CustomerPublic",
    "CustomerStatus",
    "CustomerUpdate",
    "Deal",
    "DealCreate",
    "DealStageChange",
    "DealStatus",
    "DigestOptOut",
    "DigestRun",
    "Direction",
    "FollowUp",
    "FollowUpStatus",
    "Interaction",
    "InteractionCreate",
    "Lease",
    "SeenRequest",
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
