"""Seal the secrets already stored: tokens encrypted, application tokens digested.

The schema change widens the token columns (a sealed token is longer than the 255 characters of
the plaintext); the data step reads every row through the new fields, which pass a plaintext
value through, and writes it back through ``QuerySet.update``, which seals or digests it.  Going
back unseals the OAuth tokens; a digest cannot be turned back into its token, so portals keep
their digests (and will not authenticate on the old code until they reinstall).
"""

import imbot_app.sealed_fields
from django.db import migrations


def seal_existing(apps, schema_editor):
    from imbot_app import sealing

    Credential = apps.get_model("imbot_app", "Credential")
    Portal = apps.get_model("imbot_app", "Portal")
    db = schema_editor.connection.alias
    # values_list runs from_db_value: plaintext passes through, a sealed value is opened.
    for pk, access, refresh in Credential.objects.using(db).values_list(
        "pk", "access_token", "refresh_token"
    ).iterator():
        Credential.objects.using(db).filter(pk=pk).update(
            access_token=access, refresh_token=refresh
        )
    for pk, token in Portal.objects.using(db).values_list("pk", "application_token").iterator():
        if token and not isinstance(token, sealing.TokenDigest):
            Portal.objects.using(db).filter(pk=pk).update(application_token=token)


def unseal_existing(apps, schema_editor):
    from imbot_app import sealing

    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT id, access_token, refresh_token FROM imbot_app_credential")
        rows = cursor.fetchall()
        for pk, access, refresh in rows:
            cursor.execute(
                "UPDATE imbot_app_credential SET access_token = %s, refresh_token = %s "
                "WHERE id = %s",
                [sealing.unseal(access or ""), sealing.unseal(refresh or ""), pk],
            )


class Migration(migrations.Migration):

    dependencies = [
        ('imbot_app', '0010_portal_webhook'),
    ]

    operations = [
        migrations.AlterField(
            model_name='credential',
            name='access_token',
            field=imbot_app.sealed_fields.SealedTextField(),
        ),
        migrations.AlterField(
            model_name='credential',
            name='refresh_token',
            field=imbot_app.sealed_fields.SealedTextField(blank=True),
        ),
        migrations.AlterField(
            model_name='portal',
            name='application_token',
            field=imbot_app.sealed_fields.DigestField(blank=True, max_length=255),
        ),
        migrations.RunPython(seal_existing, unseal_existing),
    ]
