"""Orders get a transfer reference: the random text customers quote on the bank transfer.

Added nullable and filled for the orders that exist, each with its own fresh reference; the
next migration makes it required and unique (a separate migration, so PostgreSQL commits the
rows before the table is altered again)."""

from django.db import migrations, models

BATCH = 2000


def fill_references(apps, schema_editor):
    from billing.models import transfer_reference_new

    Order = apps.get_model("billing", "Order")
    taken: set[str] = set()
    pending = Order.objects.filter(transfer_reference__isnull=True).order_by("pk")
    while True:
        batch = list(pending.only("pk")[:BATCH])
        if not batch:
            break
        for order in batch:
            reference = transfer_reference_new()
            while reference in taken:
                reference = transfer_reference_new()
            taken.add(reference)
            order.transfer_reference = reference
        Order.objects.bulk_update(batch, ["transfer_reference"])


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0002_beat_schedule"),
    ]

    operations = [
        migrations.AddField(
            model_name="order",
            name="transfer_reference",
            field=models.CharField(
                editable=False, max_length=20, null=True, verbose_name="transfer reference"
            ),
        ),
        migrations.RunPython(fill_references, migrations.RunPython.noop, elidable=True),
    ]
