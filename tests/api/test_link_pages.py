"""The customer's language, from the form or request to the mail, the pages its links open,
and the access package: a Swedish customer reads Swedish all the way."""
from __future__ import annotations

import copy
import io
import zipfile
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask import Flask
from flask.testing import FlaskClient

from api.services import current
from privacy.consent.mail import double_opt_in_mail
from privacy.policy.catalogue import load_catalogue
from tests.conftest import SIGNUP, Mailbox, local_path

JSON = {"Accept": "application/json"}


def sign_up(client: FlaskClient, writer: dict[str, str], headers: dict[str, str] | None = None,
            **extra: Any) -> Any:
    body = copy.deepcopy(SIGNUP) | extra
    return client.post("/v1/consents", json=body, headers=writer | (headers or {}))


def confirmation(mailbox: Mailbox) -> Any:
    mails = mailbox.to(SIGNUP["subject"]["email"])
    assert len(mails) == 1
    return mails[0]


def lang_of(url: str) -> list[str]:
    return parse_qs(urlsplit(url).query).get("lang", [])


def test_a_swedish_sign_up_gets_its_confirmation_mail_and_pages_in_swedish(
        client: FlaskClient, writer: dict[str, str], mailbox: Mailbox) -> None:
    assert sign_up(client, writer, language="sv").status_code == 201
    mail = confirmation(mailbox)
    assert mail["Subject"] == "Bekräfta din prenumeration"
    text = mailbox.body(mail)
    assert "Erbjudanden via e-post" in text and "Offers by e-mail" not in text
    confirm, withdraw = mailbox.link(mail, "/confirm/"), mailbox.link(mail, "/withdraw?")
    assert lang_of(confirm) == ["sv"] and lang_of(withdraw) == ["sv"]
    assert "lang=sv" in mail["List-Unsubscribe"]

    page = client.get(local_path(confirm))
    assert page.status_code == 200 and '<html lang="sv">' in page.text
    assert "Bekräfta din prenumeration" in page.text and f'action="{local_path(confirm)}"' in page.text
    done = client.post(local_path(confirm))
    assert done.status_code == 200 and "Din prenumeration är bekräftad." in done.text

    assert "Återkalla samtycke" in client.get(local_path(withdraw)).text
    withdrawn = client.post(local_path(withdraw))
    assert withdrawn.status_code == 200 and "Vi kontaktar dig inte längre" in withdrawn.text


def test_without_a_language_the_sign_up_follows_accept_language_else_english(
        client: FlaskClient, writer: dict[str, str], mailbox: Mailbox) -> None:
    assert sign_up(client, writer, {"Accept-Language": "sv-SE,sv;q=0.9,en;q=0.5"}).status_code == 201
    assert confirmation(mailbox)["Subject"] == "Bekräfta din prenumeration"


def test_a_sign_up_with_no_language_at_all_is_mailed_in_english(
        client: FlaskClient, writer: dict[str, str], mailbox: Mailbox) -> None:
    assert sign_up(client, writer).status_code == 201
    mail = confirmation(mailbox)
    assert mail["Subject"] == "Please confirm your subscription"
    assert "Offers by e-mail" in mailbox.body(mail)
    page = client.get(local_path(mailbox.link(mail, "/confirm/")))
    assert '<html lang="en">' in page.text and "Confirm your subscription" in page.text


def test_a_language_the_service_does_not_write_is_refused_naming_the_field(
        client: FlaskClient, writer: dict[str, str], mailbox: Mailbox) -> None:
    r = sign_up(client, writer, language="de")
    assert r.status_code == 422 and "language" in r.json["error"]["details"]
    assert mailbox.messages() == []


def test_the_language_does_not_change_what_an_idempotent_repeat_records(
        client: FlaskClient, writer: dict[str, str]) -> None:
    key = {"Idempotency-Key": "form-1"}
    first = sign_up(client, writer, key, language="sv")
    again = sign_up(client, writer, key, language="en")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json == first.json


def test_a_link_page_without_lang_speaks_the_browser_s_language(
        client: FlaskClient, writer: dict[str, str], mailbox: Mailbox) -> None:
    assert sign_up(client, writer).status_code == 201
    path = urlsplit(mailbox.link(confirmation(mailbox), "/confirm/")).path
    swedish = client.get(path, headers={"Accept-Language": "sv"})
    assert '<html lang="sv">' in swedish.text and f'action="{path}"' in swedish.text
    unknown = client.get(f"{path}?lang=xx", headers={"Accept-Language": "en-GB"})
    assert unknown.status_code == 200 and '<html lang="en">' in unknown.text


def test_a_broken_link_says_so_in_the_page_s_language(client: FlaskClient) -> None:
    swedish = client.post("/v1/consents/withdraw?subject=x&purpose=profiling&token=abc&lang=sv")
    assert swedish.status_code == 404 and "Länken gäller inte" in swedish.text
    english = client.post("/v1/consents/withdraw?subject=x&purpose=profiling&token=abc")
    assert english.status_code == 404 and "Link not valid" in english.text
    as_json = client.post("/v1/consents/withdraw?subject=x&purpose=profiling&token=abc&lang=sv", headers=JSON)
    assert as_json.status_code == 404 and as_json.json["error"]["code"]


def test_a_swedish_request_is_verified_and_downloaded_on_swedish_pages(
        client: FlaskClient, writer: dict[str, str], mailbox: Mailbox) -> None:
    assert sign_up(client, writer).status_code == 201  # profiling declined
    email = SIGNUP["subject"]["email"]
    r = client.post("/v1/requests", json={"type": "access", "email": email, "language": "sv"})
    assert r.status_code == 202, r.json
    verify = mailbox.link(mailbox.to(email)[-1], "/verify?")
    assert lang_of(verify) == ["sv"]
    assert "Bekräfta din begäran" in client.get(local_path(verify)).text
    verified = client.post(local_path(verify))
    assert verified.status_code == 200 and "Din begäran är bekräftad." in verified.text
    again = client.post(local_path(verify))
    assert again.status_code >= 400 and "Länken gäller inte" in again.text and "Link not valid" not in again.text

    download = mailbox.link(mailbox.to(email)[-1], "/download?")
    assert lang_of(download) == ["sv"]
    page = client.get(local_path(download))
    assert '<html lang="sv">' in page.text and "Hämta" in page.text
    package = client.post(local_path(download))
    assert package.status_code == 200 and package.mimetype == "application/zip"
    index = zipfile.ZipFile(io.BytesIO(package.data)).read("index.html").decode()
    assert "kontaktuppgift" in index and "lämnad av dig" in index and "avböjt" in index
    assert "pågår" in index  # the request, while its package is built
    for english in ("given by you", ">contact<", ">declined<", ">in_progress<"):
        assert english not in index


def closing_mail_of(client: FlaskClient, mailbox: Mailbox, body: dict[str, Any]) -> str:
    email = SIGNUP["subject"]["email"]
    r = client.post("/v1/requests", json={"email": email, "language": "sv", **body})
    assert r.status_code == 202, r.json
    assert client.post(local_path(mailbox.link(mailbox.to(email)[-1], "/verify?"))).status_code == 200
    done = mailbox.to(email)[-1]
    assert done["Subject"] == "Din begäran är klar"
    return mailbox.body(done)


def test_a_swedish_closing_mail_names_fields_and_purposes_as_the_customer_reads_them(
        client: FlaskClient, writer: dict[str, str], mailbox: Mailbox) -> None:
    body = copy.deepcopy(SIGNUP)
    body["purposes"] = {"loyalty_club": True, "profiling": True}
    assert client.post("/v1/consents", json=body, headers=writer).status_code == 201
    corrected = closing_mail_of(client, mailbox, {"type": "rectification", "changes": {"first_name": "Anne"}})
    assert "Vi har rättat dina uppgifter: Förnamn." in corrected
    objected = closing_mail_of(client, mailbox, {"type": "objection", "purposes": ["profiling"]})
    assert "Personliga erbjudanden" in objected and "profiling" not in objected
    erased = closing_mail_of(client, mailbox, {"type": "erasure"})
    assert "som lagen kräver att vi sparar: Förnamn." in erased  # the bookkeeping hold


def test_the_access_package_names_fields_by_their_labels(
        client: FlaskClient, writer: dict[str, str], mailbox: Mailbox) -> None:
    assert sign_up(client, writer).status_code == 201
    closing = closing_mail_of(client, mailbox, {"type": "access"})
    download = next(line for line in closing.split() if "/download?" in line)
    package = zipfile.ZipFile(io.BytesIO(client.post(local_path(download)).data))
    index = package.read("index.html").decode()
    assert "<td>Förnamn</td>" in index and "<td>first_name</td>" not in index
    assert "E-postadress, Förnamn, Efternamn, Födelsedatum, Land, Postnummer" in index  # loyalty_club's fields
    header, *rows = package.read("subject.csv").decode("utf-8-sig").splitlines()
    assert header.split(",")[-1] == "label" and any(row.endswith(",Förnamn") for row in rows)


def test_a_mail_queued_before_mails_had_a_language_is_written_in_english(app: Flask) -> None:
    note = {"template": "double_opt_in", "subject_id": "01a2339a-fe6e-770d-b205-55d386a6d267",
            "to": "anna@example.se", "token": "abc", "purposes": ["marketing_email"], "days": 14}
    with app.app_context():
        ctx = current()
        mail = double_opt_in_mail(ctx, load_catalogue(ctx.database), note)
    assert mail.subject == "Please confirm your subscription" and "Offers by e-mail" in mail.text
    assert "/v1/consents/confirm/abc?lang=en" in mail.text
