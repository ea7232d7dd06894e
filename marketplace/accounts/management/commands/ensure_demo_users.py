from django.core.management.base import BaseCommand

from marketplace.accounts.models import User


class Command(BaseCommand):
    help = "Create the demo user and the admin account if they do not exist (idempotent)."

    def handle(self, *args: object, **options: object) -> None:
        for username, password, staff in (
            ("admin", "admin-password", True),
            ("demo", "demo-password", False),
        ):
            user, created = User.objects.get_or_create(
                username=username, defaults={"email": f"{username}@localhost"}
            )
            if created:
                user.set_password(password)
                user.is_staff = user.is_superuser = staff
                user.save()
            self.stdout.write(f"{'created' if created else 'kept'} user {username}")
