"""An order's transfer reference is required, unique across tenants, and searchable by staff
case-insensitively."""

import django.db.models.functions.text
from django.db import migrations, models

import billing.models


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0003_order_transfer_reference"),
    ]

    operations = [
        migrations.AlterField(
            model_name="order",
            name="transfer_reference",
            field=models.CharField(
                default=billing.models.transfer_reference_new,
                editable=False,
                max_length=20,
                verbose_name="transfer reference",
            ),
        ),
        migrations.AddConstraint(
            model_name="order",
            constraint=models.UniqueConstraint(
                fields=("transfer_reference",), name="order_transfer_reference_unique"
            ),
        ),
        migrations.AddIndex(
            model_name="order",
            index=models.Index(
                django.db.models.functions.text.Upper("transfer_reference"),
                name="order_transfer_ref_upper_idx",
            ),
        ),
    ]
