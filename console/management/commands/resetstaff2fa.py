"""`manage.py resetstaff2fa EMAIL`: remove a staff user's second factor (a lost phone).

Removes the user's authenticator and recovery codes; their sessions stop being verified,
and their next admin visit enrols a new authenticator. Prints what it removed.
"""

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from console.models import User
from console.staff_otp import staff_2fa_reset

ACTOR = "command:resetstaff2fa"


class Command(BaseCommand):
    help = "Remove a staff user's second factor (authenticator and recovery codes)."

    def add_arguments(self, parser):
        parser.add_argument("email", help=_("The staff user's email address."))

    def handle(self, *args, **options):
        email = options["email"].strip()
        user = User.objects.filter(email__iexact=email).first()
        if user is None:
            raise CommandError(_("No user has the email address %(email)s.") % {"email": email})
        if not user.is_staff:
            raise CommandError(_("%(email)s is not a staff user.") % {"email": user.email})
        removed = staff_2fa_reset(user=user, actor=ACTOR)
        if removed:
            self.stdout.write(
                _(
                    "Removed %(count)d second-factor device(s) of %(email)s (authenticator and "
                    "recovery codes). They set up a new authenticator at their next admin visit."
                )
                % {"count": removed, "email": user.email}
            )
        else:
            self.stdout.write(
                _("%(email)s had no second factor; nothing to remove.") % {"email": user.email}
            )
