"""Small helpers shared by billing's services: who acted, and the order lock.

Every money or license change locks the order row first (then the licenses, inside
licensing), always in that order, so two staff members, a command and a customer's request
can never interleave on one order. The lock is only held inside a transaction: each public
service that calls `lock_order` is its own transaction (`transaction.atomic`).
"""

from django.utils.translation import gettext as _

from billing.models import Order
from console.errors import NotFound
from console.models import Tenant, User
from console.services import Actor


def actor_label(actor: Actor) -> str:
    if actor is None:
        return "system"
    if isinstance(actor, str):
        return actor[:100]
    if not getattr(actor, "is_authenticated", False):
        return "anonymous"
    return str(actor)[:100]


def actor_user(actor: Actor) -> User | None:
    return actor if isinstance(actor, User) else None


def lock_order(order: Order | int, tenant: Tenant | None = None) -> Order:
    """The order row, locked (SELECT … FOR UPDATE) until the caller's transaction ends."""
    order_id = order.pk if isinstance(order, Order) else order
    qs = Order.objects.select_for_update().filter(pk=order_id)
    if tenant is not None:
        qs = qs.filter(tenant=tenant)
    locked = qs.first()
    if locked is None:
        raise NotFound(_("Order #%(id)s does not exist.") % {"id": order_id}, code="NOT_FOUND")
    # The lock is on the order row only; the tenant is read after it (a fresh value).
    locked.tenant = Tenant.objects.get(pk=locked.tenant_id)
    return locked
