"""The mails a customer gets about a data-subject request, in Swedish or English.

Each mail names the request and says what happens next; none repeats the personal data
the request is about (a mail may be read by someone else), only links to it.
"""
from __future__ import annotations

from typing import Any

from privacy.languages import supported
from privacy.mail.mailer import OutgoingMail

TYPE_NAMES = {
    "sv": {"access": "tillgång till dina uppgifter", "erasure": "radering", "rectification": "rättelse",
           "restriction": "begränsning av behandling", "portability": "dataportabilitet",
           "objection": "invändning mot direktmarknadsföring"},
    "en": {"access": "access to your data", "erasure": "erasure", "rectification": "rectification",
           "restriction": "restriction of processing", "portability": "data portability",
           "objection": "objection to direct marketing"},
}

TEXTS: dict[str, dict[str, str]] = {
    "sv": {
        "verify.subject": "Bekräfta din begäran ({type})",
        "verify.body": ("Vi har tagit emot en begäran om {type} för den här e-postadressen.\n\n"
                        "Bekräfta att det är du genom att öppna länken och trycka på knappen:\n{link}\n\n"
                        "Länken gäller i {days} dagar och kan bara användas en gång. Om det inte var du "
                        "kan du bortse från det här mejlet: ingenting händer utan bekräftelse.\n\n"
                        "Ärende: {id}"),
        "extended.subject": "Vi behöver mer tid för din begäran",
        "extended.body": ("Vi behöver längre tid för att besvara din begäran om {type} "
                          "(artikel 12.3 i dataskyddsförordningen).\n\nSkäl: {reason}\n\n"
                          "Du får svar senast {due}.\n\nÄrende: {id}"),
        "rejected.subject": "Din begäran kunde inte tillmötesgås",
        "rejected.body": ("Vi kan inte tillmötesgå din begäran om {type}.\n\nSkäl: {reason}\n\n"
                          "Du har rätt att lämna klagomål till tillsynsmyndigheten, {authority} ({url}), "
                          "och att begära rättslig prövning.\n\nÄrende: {id}"),
        "done.subject": "Din begäran är klar",
        "done.access": ("Dina uppgifter finns att hämta här:\n{link}\n\nLänken gäller i {days} dagar och "
                        "kan användas {uses} gånger. Paketet innehåller data.json, CSV-filer och en "
                        "läsbar sida, index.html."),
        "done.nodata": "Vi har inga personuppgifter kopplade till den här e-postadressen.",
        "done.erasure": "Vi har raderat dina personuppgifter.",
        "done.erasure_held": ("Vi har raderat dina personuppgifter, utom följande som lagen kräver att vi "
                              "sparar: {held}. De raderas när lagringstiden löper ut."),
        "done.rectification": "Vi har rättat dina uppgifter: {fields}.",
        "done.restriction": ("Vi har begränsat behandlingen av dina uppgifter. Vi kontaktar dig innan "
                             "begränsningen hävs."),
        "done.objection": "Vi har slutat använda dina uppgifter för: {purposes}.",
        "done.partial": "Några av systemen kunde inte slutföra sin del; vi följer upp det.",
        "done.systems": "Så här gick det i varje system:\n{systems}",
        "done.receipt": ("Ditt raderingskvitto, signerat av oss (JWS; kontrollera det med våra publika "
                         "nycklar på {keys}). Det nämner dig bara med ett pseudonymt id. Spara det:\n{receipt}"),
        "done.footer": "\n\nÄrende: {id}",
        "lift.subject": "Begränsningen av dina uppgifter hävs",
        "lift.body": ("Begränsningen av behandlingen av dina uppgifter hävs (artikel 18.3 i "
                      "dataskyddsförordningen).\n\nSkäl: {reason}\n\nÄrende: {id}"),
    },
    "en": {
        "verify.subject": "Confirm your request ({type})",
        "verify.body": ("We received a request for {type} for this e-mail address.\n\n"
                        "Confirm that it was you by opening the link and pressing the button:\n{link}\n\n"
                        "The link is valid for {days} days and works once. If this was not you, ignore this "
                        "e-mail: nothing happens without confirmation.\n\nRequest: {id}"),
        "extended.subject": "We need more time for your request",
        "extended.body": ("We need more time to answer your request for {type} (GDPR Article 12(3)).\n\n"
                          "Reason: {reason}\n\nYou will have our answer by {due}.\n\nRequest: {id}"),
        "rejected.subject": "We cannot act on your request",
        "rejected.body": ("We cannot act on your request for {type}.\n\nReason: {reason}\n\n"
                          "You have the right to lodge a complaint with the supervisory authority, "
                          "{authority} ({url}), and to seek a judicial remedy.\n\nRequest: {id}"),
        "done.subject": "Your request is done",
        "done.access": ("Your data is ready to download here:\n{link}\n\nThe link is valid for {days} days and "
                        "works {uses} times. The package holds data.json, CSV files and a readable page, "
                        "index.html."),
        "done.nodata": "We hold no personal data linked to this e-mail address.",
        "done.erasure": "We have erased your personal data.",
        "done.erasure_held": ("We have erased your personal data, except the following, which the law requires "
                              "us to keep: {held}. It will be erased when that period ends."),
        "done.rectification": "We have corrected your data: {fields}.",
        "done.restriction": ("We have restricted the processing of your data. We will tell you before the "
                             "restriction is lifted."),
        "done.objection": "We have stopped using your data for: {purposes}.",
        "done.partial": "Some systems could not finish their part; we are following it up.",
        "done.systems": "What each system did:\n{systems}",
        "done.receipt": ("Your erasure receipt, signed by us (a JWS; check it with our public keys at {keys}). "
                         "It names you only by a pseudonymous id. Keep it:\n{receipt}"),
        "done.footer": "\n\nRequest: {id}",
        "lift.subject": "The restriction of your data is being lifted",
        "lift.body": ("The restriction of processing of your data is being lifted (GDPR Article 18(3)).\n\n"
                      "Reason: {reason}\n\nRequest: {id}"),
    },
}


def text(language: str, key: str, **values: Any) -> str:
    return TEXTS[supported(language)][key].format(**values)


def type_name(language: str, request_type: str) -> str:
    return TYPE_NAMES[supported(language)][request_type]


def mail(to: str, language: str, subject_key: str, body: str, **values: Any) -> OutgoingMail:
    return OutgoingMail(to=to, subject=text(language, subject_key, **values), text=body)
