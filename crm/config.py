"""One settings object, built once at start-up and passed down."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from functools import cached_property
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class StageConfig(BaseModel):
    """A deal stage: how long a deal may sit in it before it rots, and its win probability."""

    name: str
    rotting_days: int = Field(default=14, ge=0)
    probability: float = Field(default=0.5, ge=0.0, le=1.0)


DEFAULT_STAGES: tuple[StageConfig, ...] = (
    StageConfig(name="lead", rotting_days=14, probability=0.10),
    StageConfig(name="qualified", rotting_days=14, probability=0.25),
    StageConfig(name="proposal", rotting_days=10, probability=0.50),
    StageConfig(name="negotiation", rotting_days=7, probability=0.75),
    StageConfig(name="won", rotting_days=0, probability=1.0),
    StageConfig(name="lost", rotting_days=0, probability=0.0),
)

WON_STAGE = "won"
LOST_STAGE = "lost"


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        value = value.strip()
        if value.startswith("["):
            return json.loads(value)
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _parse_stages(value: object) -> object:
    """Accept JSON, or the short form ``lead:14,qualified:14:0.25,...`` (name[:days[:probability]])."""
    if not isinstance(value, str):
        return value
    value = value.strip()
    if value.startswith("["):
        return json.loads(value)
    stages: list[dict[str, object]] = []
    for part in value.split(","):
        bits = [b.strip() for b in part.split(":")]
        if not bits[0]:
            continue
        stage: dict[str, object] = {"name": bits[0]}
        if len(bits) > 1 and bits[1]:
            stage["rotting_days"] = int(bits[1])
        if len(bits) > 2 and bits[2]:
            stage["probability"] = float(bits[2])
        stages.append(stage)
    return stages


class Settings(BaseSettings):
    """crmbot settings: environment variables prefixed ``CRM_`` or a ``.env`` file.

    Slack's own variables keep Slack's names (``SLACK_BOT_TOKEN`` ...).
    """

    model_config = SettingsConfigDict(
        env_prefix="CRM_",
        env_file=".env",
        env_ignore_empty=True,
        extra="ignore",
        populate_by_name=True,
    )

    environment: Literal["development", "production", "test"] = "development"
    database_url: str = "sqlite:///./crm.db"
    timezone: str = "UTC"
    internal_domains: Annotated[list[str], NoDecode] = Field(default_factory=list)
    deal_stages: Annotated[list[StageConfig], NoDecode] = Field(
        default_factory=lambda: [s.model_copy() for s in DEFAULT_STAGES]
    )
    default_currency: str = "USD"
    default_role: Literal["admin", "manager", "rep", "viewer"] = "rep"
    log_level: str = "INFO"
    outbox_dir: str = "./outbox"

    # --- Mail capture (IMAP poller, ingest, SMTP) ---
    mail_unknown_sender: Literal["create_lead", "ignore", "quarantine"] = "create_lead"
    # List and role mail (List-Id, Precedence: list, a digest, noreply@, postmaster@, ...) is
    # stored only for a known contact; true lets it create leads like any unknown sender.
    mail_list_leads: bool = False
    # Characters of body text kept per message; longer bodies are cut and the cut noted.
    mail_max_body_chars: int = Field(default=100_000, ge=1_000)
    # Processes that parse mail in parallel during large syncs and imports (0: one per CPU).
    mail_parse_workers: int = Field(default=0, ge=0, le=64)
    imap_host: str | None = None
    imap_port: int | None = Field(default=None, ge=1, le=65535)  # 993 (tls) or 143
    # tls: implicit TLS; starttls: upgrade a plain connection; plaintext only when set so.
    imap_security: Literal["tls", "starttls", "plaintext"] = "tls"
    imap_tls_verify: bool = True
    imap_ca_file: str | None = None
    imap_user: str | None = None
    imap_password: SecretStr | None = None
    # XOAUTH2 (Gmail, Microsoft 365): a command that prints a fresh access token.
    imap_oauth2_token_command: str | None = None
    imap_folder: str = "INBOX"
    # After a message is stored: mark it \Seen, or move it to imap_processed_folder.
    imap_processed_action: Literal["seen", "move"] = "seen"
    imap_processed_folder: str = "Processed"
    # Name of the mailbox in the CRM (interaction source "imap:<name>"); default user@host/folder.
    imap_mailbox_name: str | None = None
    imap_batch_size: int = Field(default=200, ge=1, le=5_000)
    # Bytes of mail fetched at once (memory bound); a bigger message is fetched on its own.
    imap_batch_bytes: int = Field(default=50_000_000, ge=100_000)
    # How often to sync without IDLE; with IDLE, the longest a missed new-mail notice can delay a sync.
    imap_poll_seconds: float = Field(default=60.0, gt=0)
    # IDLE is re-issued before servers drop it (RFC 9051 allows them to after 30 minutes).
    imap_idle_seconds: float = Field(default=25 * 60.0, gt=0, le=29 * 60.0)
    imap_timeout_seconds: float = Field(default=60.0, gt=0)
    imap_lease_seconds: float = Field(default=90.0, ge=5)
    imap_backoff_max_seconds: float = Field(default=300.0, gt=0)
    # Consecutive failures before an alert (log error, and Slack when it is on).
    imap_alert_after_failures: int = Field(default=3, ge=1)
    # --- end mail ---

    # --- Analytics ---
    # Where churn model files go (metadata is stored with each analytics run).
    model_dir: str = "./models"
    churn_horizon_days: int = Field(default=90, ge=7, le=730)
    churn_training_cutoffs: int = Field(default=4, ge=2, le=12)
    churn_cutoff_step_days: int = Field(default=30, ge=1, le=365)
    churn_min_labelled: int = Field(default=200, ge=10)
    churn_high_risk: float = Field(default=0.6, gt=0, lt=1)
    churn_medium_risk: float = Field(default=0.3, gt=0, lt=1)
    segment_k_min: int = Field(default=3, ge=2, le=20)
    segment_k_max: int = Field(default=6, ge=2, le=20)
    segment_silhouette_sample: int = Field(default=4_000, ge=500, le=50_000)
    analytics_seed: int = 7
    # Months ahead for each customer's expected purchases and spend (customer value).
    value_horizon_months: int = Field(default=12, ge=1, le=60)
    # Association rules over purchases (product and category level): a rule A -> B is kept
    # when its support, confidence and lift reach these and at least basket_min_count
    # customers bought both.
    basket_min_support: float = Field(default=0.01, gt=0, le=1)
    basket_min_confidence: float = Field(default=0.1, gt=0, le=1)
    basket_min_lift: float = Field(default=1.2, gt=0)
    basket_min_count: int = Field(default=5, ge=1)
    # Two-item rules (A and B -> C): over the most frequent pairs, kept when their confidence
    # beats the better of A -> C and B -> C by this share.
    basket_max_pairs: int = Field(default=2000, ge=0, le=100_000)
    basket_min_improvement: float = Field(default=0.1, ge=0)
    # Interactions with text the topics step of a refresh reads at most, oldest first (a big
    # store's history is taken in over a few nights; each night then reads what is new).
    topics_batch: int = Field(default=200_000, ge=1)
    unanswered_business_hours: float = Field(default=8, gt=0)
    awaiting_reply_days: int = Field(default=5, ge=1)
    quiet_days_high: int = Field(default=14, ge=1)
    quiet_days_mid: int = Field(default=30, ge=1)
    quiet_days_low: int = Field(default=60, ge=1)
    # Findings of each kind stored per owner and run, most severe then oldest first: a rep
    # works through a list (the digest shows 200 at most); the run keeps every rule's count.
    findings_per_owner: int = Field(default=200, ge=1)
    # Threads the model fits and k-means may use. One by default: the refresh runs beside the
    # bot, and OpenMP threads that spin while another process holds the core cost several
    # times their work on a busy machine (measured: churn training 9 s with one, 27 s with two).
    analytics_threads: int = Field(default=1, ge=1, le=64)
    # PostgreSQL connections that read the interactions at once in a refresh (the database
    # does the work of each; two keep two cores busy on a small machine).
    analytics_readers: int = Field(default=2, ge=1, le=16)
    # --- end analytics ---

    # --- Campaigns ---
    # Campaign mails sent per minute at most (sends are spread out under this rate).
    campaign_rate_per_minute: float = Field(default=60, gt=0)
    # Default control group share and response window of a new campaign.
    campaign_holdout: float = Field(default=0.1, ge=0, le=0.9)
    campaign_window_days: int = Field(default=14, ge=1, le=365)
    # Satisfaction surveys after a support thread we answered has been quiet for csat_delay
    # (seconds, or ISO 8601 such as PT24H); at most one per customer per csat_min_days.
    csat_enabled: bool = False
    csat_delay: timedelta = timedelta(hours=24)
    csat_min_days: int = Field(default=30, ge=1)
    csat_link_days: int = Field(default=14, ge=1)

    @field_validator("csat_delay", mode="before")
    @classmethod
    def _short_duration(cls, value: object) -> object:
        """``24h``, ``90m``, ``2d`` or plain seconds, besides ISO 8601 (``PT24H``)."""
        if isinstance(value, str):
            text = value.strip().lower()
            units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
            if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
                return timedelta(seconds=float(text[:-1]) * units[text[-1]])
            if text.replace(".", "", 1).isdigit():
                return timedelta(seconds=float(text))
        return value
    # --- end campaigns ---

    # --- Digests and scheduler ---
    # Outgoing mail. Without an SMTP host, emails are written as .eml files to outbox_dir.
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_security: Literal["starttls", "ssl", "none"] = "starttls"
    smtp_from: str = "crmbot <crmbot@localhost>"
    smtp_timeout: float = 30.0
    # A CA bundle to trust for the SMTP server's certificate (an internal relay), besides the system's.
    smtp_ca_file: str | None = None
    # Where List-Unsubscribe mails go (default: the From address); a URL is added when public_url is set.
    digest_unsubscribe_mailto: str | None = None
    # With both set, digest emails carry a one-click unsubscribe link served by crmbot's HTTP
    # endpoint at <public_url>/digests/unsubscribe (RFC 8058).
    public_url: str | None = None
    secret_key: SecretStr | None = None
    # Schedules (cron, 5 fields) in the team time zone; follow-up digests run in each rep's own zone.
    analytics_refresh_cron: str = "30 2 * * *"
    churn_digest_cron: str = "0 8 * * mon-fri"
    followups_digest_cron: str = "30 8 * * mon-fri"
    segments_digest_cron: str = "0 9 * * mon"
    # A digest whose time passed while crmbot was down is still sent within this many minutes.
    digest_misfire_grace_minutes: int = Field(default=240, ge=0)
    digest_max_attempts: int = Field(default=5, ge=1)
    # Slack channels for the team digests (ids or #names); empty: no channel post.
    churn_digest_channel: str | None = None
    segments_digest_channel: str | None = None
    # Extra email recipients per digest, comma-separated (besides the users who receive it).
    churn_digest_emails: Annotated[list[str], NoDecode] = Field(default_factory=list)
    segments_digest_emails: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Churn digest: how big a rise in risk since the last digest sent is worth a mention
    # (who counts as high risk is churn_high_risk, in the analytics settings).
    churn_rise_alert: float = Field(default=0.15, ge=0, le=1)
    # --- end digests ---

    # --- Security and the data's life ---
    # Encryption at rest: comma-separated Fernet keys; the first encrypts, all decrypt
    # (`crmbot keys generate` makes one, `crmbot keys rotate` re-encrypts under the first).
    # Unset: personal data is stored unencrypted (crmbot says so at start-up).
    encryption_keys: SecretStr | None = None
    # Key for keyed hashes (HMAC) of forgotten addresses; unset: a random key the store makes
    # and keeps itself (a copy of the database then holds the key too).
    hmac_key: SecretStr | None = None
    # After `customer forget`, mail from the forgotten addresses is dropped, not captured.
    forget_blocks_capture: bool = True
    # Scheduled backups (cron, 5 fields, team time zone; unset: none) into backup_dir, keeping
    # the newest backup_keep files.
    backup_cron: str | None = None
    backup_dir: str = "./backups"
    backup_keep: int = Field(default=7, ge=1)
    # Retention (days; unset: kept): raw mail beside captured emails and in quarantine, and
    # interactions themselves (purchases stay). Applied nightly at retention_cron.
    retention_raw_mail_days: int | None = Field(default=None, ge=1)
    retention_interactions_days: int | None = Field(default=None, ge=1)
    # Analytics runs' per-customer results (segments, churn scores, values, findings,
    # suggestions) older than this are deleted, the newest two runs always kept (derived data:
    # each refresh stores them anew for every customer). Unset: kept.
    retention_analytics_days: int | None = Field(default=35, ge=1)
    retention_cron: str = "15 3 * * *"
    # --- end security ---

    # Slack (Slack's own names)
    slack_bot_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_BOT_TOKEN", "slack_bot_token")
    )
    slack_signing_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("SLACK_SIGNING_SECRET", "slack_signing_secret"),
    )
    slack_app_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_APP_TOKEN", "slack_app_token")
    )
    slack_api_url: str | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_API_URL", "slack_api_url")
    )
    http_host: str = "127.0.0.1"
    http_port: int = 3000
    # --- more Slack settings ---
    # HTTP mode: processes accepting /slack/events from one listening socket (a free process
    # takes the next request). Python runs Python code one thread at a time per process, so
    # one worker per core serves bursts best.
    http_workers: int = Field(default=1, ge=1, le=64)
    # HTTP mode: requests a process works on at once once Slack has had its answer; the others
    # wait for a free slot (Slack is answered at once all the same). Threads competing for one
    # interpreter cost more CPU than they overlap: a few at a time serve a burst fastest.
    http_listener_slots: int = Field(default=4, ge=1, le=1024)
    # --- end Slack ---

    @field_validator("internal_domains", mode="before")
    @classmethod
    def _domains(cls, value: object) -> object:
        value = _split_csv(value)
        if isinstance(value, list):
            return [str(v).strip().lower().lstrip("@") for v in value if str(v).strip()]
        return value

    @field_validator("churn_digest_emails", "segments_digest_emails", mode="before")
    @classmethod
    def _emails(cls, value: object) -> object:
        value = _split_csv(value)
        if isinstance(value, list):
            return [str(v).strip().lower() for v in value if str(v).strip()]
        return value

    @field_validator("deal_stages", mode="before")
    @classmethod
    def _stages(cls, value: object) -> object:
        return _parse_stages(value)

    @field_validator("default_currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        value = value.strip().upper()
        if len(value) != 3 or not value.isalpha():
            raise ValueError("CRM_DEFAULT_CURRENCY must be a 3-letter ISO code such as USD")
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"CRM_TIMEZONE {value!r} is not an IANA time zone") from exc
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        names = [s.name for s in self.deal_stages]
        if len(set(names)) != len(names):
            raise ValueError("CRM_DEAL_STAGES has a stage twice")
        for required in (WON_STAGE, LOST_STAGE):
            if required not in names:
                raise ValueError(f"CRM_DEAL_STAGES must include the closing stage {required!r}")
        if len(names) < 3:
            raise ValueError("CRM_DEAL_STAGES needs at least one open stage besides won and lost")
        if (
            self.environment == "production"
            and self.slack_bot_token
            and not self.slack_signing_secret
        ):
            raise ValueError("SLACK_SIGNING_SECRET is required when SLACK_BOT_TOKEN is set")
        return self

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in self.deal_stages]

    @property
    def open_stages(self) -> list[str]:
        return [s.name for s in self.deal_stages if s.name not in (WON_STAGE, LOST_STAGE)]

    def stage(self, name: str) -> StageConfig | None:
        return next((s for s in self.deal_stages if s.name == name), None)

    def stage_probability(self, name: str) -> Decimal:
        stage = self.stage(name)
        return Decimal(str(stage.probability)) if stage else Decimal(0)

    def is_internal_address(self, address: str) -> bool:
        domain = address.rsplit("@", 1)[-1].lower()
        return any(domain == d or domain.endswith("." + d) for d in self.internal_domains)


def reveal(secret: SecretStr | str | None) -> str | None:
    """A secret setting's value, at the one place that hands it to a library; everywhere
    else (logs, errors, reprs, --json) a SecretStr shows as '**********'. (A plain string, set
    by ``model_copy(update=...)`` which does not validate, is given back as it is.)"""
    return secret.get_secret_value() if isinstance(secret, SecretStr) else secret


def get_settings(**overrides: object) -> Settings:
    """Build the settings once at start-up (environment, .env, then explicit overrides)."""
    return Settings(**overrides)  # type: ignore[arg-type]
