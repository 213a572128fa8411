"""Translations: the console and its emails ship in Simplified Chinese (the default language,
zh-hans) and English (the source strings). These tests keep the catalogs complete, the
compiled .mo files in step with the .po files, and check that pages and emails (R9 beta
status, R11 renewal reminders) really come out in Chinese by default and in English on
request."""

import collections
import datetime as dt
import re
from pathlib import Path

import polib
import pytest
import time_machine
from django.conf import settings
from django.urls import reverse
from django.utils import translation

from console.emails import render_templated_email
from console.models import BetaApplication
from console.tests.factories import BetaApplicationFactory, DeviceFactory
from console.timeutils import BUSINESS_TZ
from licensing import jobs
from licensing.services import license_bind, licenses_issue

pytestmark = pytest.mark.django_db

LOCALE = Path(settings.BASE_DIR) / "locale"
CATALOGS = {
    "zh_Hans": LOCALE / "zh_Hans" / "LC_MESSAGES" / "django.po",
    "en": LOCALE / "en" / "LC_MESSAGES" / "django.po",
}
# Python %-format and str.format placeholders, HTML tags and entities: a translation must
# carry exactly the ones of its source, or rendering breaks or loses a value.
PLACEHOLDER = re.compile(r"%\(\w+\)[sdrf]|%[sdrf]|\{[^{}]*\}|</?[a-zA-Z][^>]*>|&\w+;")
CJK = re.compile(r"[\u4e00-\u9fff]")


def placeholders(text: str) -> collections.Counter:
    return collections.Counter(PLACEHOLDER.findall(text))


def load(lang: str) -> polib.POFile:
    path = CATALOGS[lang]
    assert path.exists(), f"{path} is missing: run `make messages`"
    return polib.pofile(str(path))


# --- (a) the catalogs -----------------------------------------------------------------------


def test_zh_hans_catalog_is_complete_with_nothing_fuzzy():
    po = load("zh_Hans")
    live = [e for e in po if not e.obsolete]
    assert len(live) > 100, "the catalog looks empty: was makemessages run?"
    untranslated = [e.msgid for e in po.untranslated_entries()]
    fuzzy = [e.msgid for e in po.fuzzy_entries()]
    assert untranslated == [], f"untranslated: {untranslated[:20]}"
    assert fuzzy == [], f"fuzzy (check and clear the flag): {fuzzy[:20]}"


def test_zh_hans_catalog_header_and_plural_forms():
    po = load("zh_Hans")
    assert not po.metadata_is_fuzzy
    assert po.metadata["Project-Id-Version"] == "Field Console"
    assert po.metadata["Language"] == "zh_Hans"
    assert po.metadata["Content-Type"] == "text/plain; charset=UTF-8"
    # Chinese has one form: msgstr[0] serves every count.
    assert po.metadata["Plural-Forms"].replace(" ", "") == "nplurals=1;plural=0;"
    for entry in po:
        if entry.msgid_plural and not entry.obsolete:
            assert set(entry.msgstr_plural) == {0}, entry.msgid


def test_zh_hans_translations_keep_every_placeholder():
    bad = []
    for entry in load("zh_Hans").translated_entries():
        if entry.msgid_plural:
            # The single Chinese form is used for every count, the plural source's too.
            if placeholders(entry.msgstr_plural[0]) != placeholders(entry.msgid_plural):
                bad.append(entry.msgid)
        elif placeholders(entry.msgstr) != placeholders(entry.msgid):
            bad.append(entry.msgid)
    assert bad == []


def test_english_catalog_exists_with_its_header_and_falls_back_to_the_source():
    po = load("en")
    assert not po.metadata_is_fuzzy
    assert po.metadata["Language"] == "en"
    assert po.metadata["Content-Type"] == "text/plain; charset=UTF-8"
    assert po.fuzzy_entries() == []
    # The English text is the msgid; a translated entry would override it by mistake.
    assert [e.msgid for e in po.translated_entries() if e.msgstr != e.msgid] == []
    assert {e.msgid for e in po if not e.obsolete} == {
        e.msgid for e in load("zh_Hans") if not e.obsolete
    }


# --- (d) compiled catalogs are current -------------------------------------------------------


def _messages(entries) -> dict:
    """What gettext looks up: (msgid, msgid_plural) → translation(s), header left out."""
    found = {}
    for e in entries:
        if not e.msgid or e.obsolete or "fuzzy" in e.flags:
            continue
        if e.msgid_plural:
            forms = tuple(v for _k, v in sorted(e.msgstr_plural.items()))
            if any(forms):
                found[(e.msgctxt, e.msgid, e.msgid_plural)] = forms
        elif e.msgstr:
            found[(e.msgctxt, e.msgid, None)] = e.msgstr
    return found


@pytest.mark.parametrize("lang", sorted(CATALOGS))
def test_compiled_mo_matches_the_po(lang):
    """`make run` serves the committed .mo files; stale ones would show old text."""
    mo_path = CATALOGS[lang].with_suffix(".mo")
    assert mo_path.exists(), f"{mo_path} is missing: run `make messages`"
    po = load(lang)
    mo = polib.mofile(str(mo_path))
    assert _messages(mo) == _messages(po), f"{mo_path} is stale: run `make messages`"


# --- (b) pages ------------------------------------------------------------------------------


def test_pages_default_to_simplified_chinese(client):
    assert settings.LANGUAGE_CODE == "zh-hans"
    response = client.get(reverse("login"))
    html = response.content.decode()
    assert response.status_code == 200
    assert '<html lang="zh-hans"' in html
    assert "<title>登录" in html
    assert "忘记密码？" in html
    assert "创建账号并申请内测" in html
    assert "Forgot your password?" not in html


def test_a_chinese_browser_gets_chinese_and_an_english_one_english(client):
    """Browsers send zh-CN, not zh-hans: Django maps it to zh-hans."""
    zh = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9").content.decode()
    assert "忘记密码？" in zh
    en = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9").content.decode()
    assert "Forgot your password?" in en


def test_pages_switch_to_english_with_the_language_cookie(client):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    html = client.get(reverse("login")).content.decode()
    assert '<html lang="en"' in html
    assert "Forgot your password?" in html
    assert "忘记密码" not in html


def test_devices_page_for_a_member_in_chinese_then_english_through_set_language(client, alice):
    client.force_login(alice)
    html = client.get(reverse("devices")).content.decode()
    assert "<h1>现场设备</h1>" in html
    assert "注册设备" in html  # an owner may register devices
    assert "Field devices" not in html

    response = client.post(reverse("set_language"), {"language": "en", "next": "/devices/"})
    assert response.status_code == 302
    html = client.get(reverse("devices")).content.decode()
    assert "<h1>Field devices</h1>" in html
    assert "现场设备" not in html


def test_dashboard_navigation_is_translated(client, alice):
    client.force_login(alice)
    html = client.get(reverse("dashboard")).content.decode()
    for text in ("概览", "设备", "许可证", "订单", "API 密钥", "团队", "退出登录"):
        assert text in html, text


# --- (c) emails -----------------------------------------------------------------------------


def test_r9_beta_status_email_in_chinese():
    application = BetaApplicationFactory(company_name="露天矿业", language="zh-hans")
    message = render_templated_email(
        to=[application.email],
        template_prefix="emails/beta_status",
        context={
            "application": application,
            "state": BetaApplication.State.SUBMITTED,
            "reason": "",
            "tenant": None,
        },
        language=application.language,
    )
    html = message.alternatives[0][0]
    assert message.subject == "已收到内测申请：露天矿业"
    assert "我们已收到 露天矿业 的内测申请" in message.body
    assert '<html lang="zh-hans">' in html
    assert "您好" in html
    assert "We received" not in message.body + html


def test_r9_beta_status_email_in_english_for_an_english_applicant():
    application = BetaApplicationFactory(company_name="Open Pit Ltd", language="en")
    message = render_templated_email(
        to=[application.email],
        template_prefix="emails/beta_status",
        context={"application": application, "state": BetaApplication.State.SUBMITTED},
        language=application.language,
    )
    assert message.subject == "Beta application received: Open Pit Ltd"
    assert not CJK.search(message.subject + message.body)


def test_r11_renewal_reminder_email_in_chinese(
    tenant, alice, mailoutbox, django_capture_on_commit_callbacks
):
    """The 7-day reminder for a zh-hans tenant: subject, body and device table in Chinese."""
    tenant.language = "zh-hans"
    tenant.save()
    paid = dt.datetime(2026, 3, 15, 10, 0, tzinfo=BUSINESS_TZ)
    with time_machine.travel(paid, tick=False):
        (lic,) = licenses_issue(tenant=tenant, quantity=1, years=1, paid_at=paid)
        license_bind(
            tenant=tenant, license=lic, device=DeviceFactory(tenant=tenant, serial="truck_1")
        )
    # R3: last service date 2027-03-15, expiry date 2027-03-16; 7 days before it:
    with (
        time_machine.travel(dt.datetime(2027, 3, 9, 9, 0, tzinfo=BUSINESS_TZ), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        jobs.reminders_send_due()
    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    html = message.alternatives[0][0]
    assert "1 个许可证将于 2027-03-16 到期（最后服务日 2027-03-15）" in message.subject
    assert "即本提醒撰写之日（2027-03-09）之后 7 天" in message.body
    assert "最后服务日为 2027-03-15" in message.body
    assert "2027-03-09 的服务 → 2027-03-16 起" in message.body
    assert "设备 truck_1" in html
    assert "完整服务 → " in html and "无服务" in html
    assert "expire" not in (message.subject + message.body).lower()


@pytest.fixture(autouse=True)
def _default_language():
    # Rendering above relies on the request or the email's own language, never on a
    # translation left active by another test.
    with translation.override(settings.LANGUAGE_CODE):
        yield
