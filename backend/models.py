"""Imports every model so that metadata (and Alembic) sees all tables."""
from backend.accounts.models import ActivationCode, AuthToken, Patient, ThrottleCounter  # noqa: F401
from backend.accounts.reset import PasswordReset  # noqa: F401
from backend.agenda import models as _agenda_models  # noqa: F401
from backend.audit.models import AuditEntry, AuditHead  # noqa: F401
from backend.messaging import models as _messaging_models  # noqa: F401
from backend.catalog import models as _catalog_models  # noqa: F401
from backend.family.models import CarerLink, LegalRepresentative  # noqa: F401
from backend.insurer.models import Insurer, InsurerToken  # noqa: F401
from backend.notifications.models import Notification, OutboxEmail  # noqa: F401
from backend.notifications.models import JobClaim, NotificationPreference, PushDelivery, PushSubscription  # noqa: F401
from backend.professionals.models import Professional, ProfessionalToken  # noqa: F401
from backend.records.access.models import Block, Consent, EmergencyAccess  # noqa: F401
from backend.records.documents.models import Document, DocumentCode, SubmissionSet, SubmissionSetEntry  # noqa: F401
from backend.records.models import PatientKey, Record  # noqa: F401
from backend.records.profile.models import AdvanceDirective, OrganDonation, ProfileEntry, ProfileMeasure  # noqa: F401
from migration.models import ImportItem, ImportRun  # noqa: F401
