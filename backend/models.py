"""Imports every model so that metadata (and Alembic) sees all tables."""
from backend.accounts.models import ActivationCode, AuthToken, Patient  # noqa: F401
from backend.agenda import models as _agenda_models  # noqa: F401
from backend.audit.models import AuditEntry, AuditHead  # noqa: F401
from backend.messaging import models as _messaging_models  # noqa: F401
from backend.catalog import models as _catalog_models  # noqa: F401
from backend.notifications.models import Notification, OutboxEmail  # noqa: F401
from backend.notifications.models import JobClaim, NotificationPreference, PushDelivery, PushSubscription  # noqa: F401
from backend.professionals.models import Professional, ProfessionalToken  # noqa: F401
from backend.records.models import (  # noqa: F401
    Block, Consent, Document, DocumentContent, EmergencyAccess, PatientKey, Record)
from backend.records.profile_models import AdvanceDirective, OrganDonation, ProfileEntry, ProfileMeasure  # noqa: F401
from migration.models import ImportItem, ImportRun  # noqa: F401
