"""Who is acting, and what their role lets them change."""

from __future__ import annotations

from dataclasses import dataclass

from crm.models import Role
from crm.services.errors import PermissionDenied

_WRITE_ALL = {Role.admin, Role.manager}


@dataclass(frozen=True)
class Actor:
    """The person or process behind a change; ``name`` goes into the audit trail."""

    name: str
    role: Role = Role.admin
    user_id: int | None = None

    @classmethod
    def system(cls, name: str = "system") -> Actor:
        return cls(name=name, role=Role.admin)

    def require_write(self) -> None:
        if self.role == Role.viewer:
            raise PermissionDenied(
                "Your role is viewer, which can read but not change the CRM.",
                hint="Ask an admin to make you a rep.",
            )

    def require_owner(self, owner_id: int | None, what: str) -> None:
        """Reps change their own records; managers and admins change everyone's."""
        self.require_write()
        if self.role in _WRITE_ALL:
            return
        if owner_id is None or owner_id != self.user_id:
            raise PermissionDenied(
                f"Only its owner, a manager or an admin can change this {what}.",
            )

    def require_manager(self, what: str) -> None:
        if self.role not in _WRITE_ALL:
            raise PermissionDenied(f"Only managers and admins can {what}.")

    def require_admin(self, what: str) -> None:
        if self.role != Role.admin:
            raise PermissionDenied(f"Only admins can {what}.")
