"""The reports' texts in English and Swedish: titles, headings, the rule in words."""
from __future__ import annotations

LANGUAGES = ("en", "sv")

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "retention_title": "Retention report",
        "processing_title": "Record of processing activities (GDPR Art. 30)",
        "period": "Period", "generated": "As of", "page": "Page", "of": "of",
        "section": "Section", "purpose": "Purpose", "category": "Category", "measure": "Measure", "value": "Value",
        "chart": "Chart", "table": "Figures",
        "held": "Subjects and fields held, per purpose and data category",
        "age": "Age of the fields held (by the subject's creation), per purpose and category",
        "due": "Falling due under each purpose's retention rule (next 30 and 90 days, already due)",
        "removed": "Deleted, anonymised or minimised by retention sweeps in the period",
        "erasures": "Erasures in the period, per month",
        "holds": "Legal holds in force, by hold and end month",
        "consent": "Consent given and withdrawn, per purpose and month",
        "requests": "Open and overdue data-subject requests, by type",
        "none": "Nothing in this period.",
        "controller": "Controller", "name": "Name", "contact": "Contact", "dpo_email": "DPO e-mail",
        "address": "Address", "legal_basis": "Legal basis", "data_categories": "Categories of personal data",
        "subject_categories": "Categories of data subjects", "recipients": "Recipients",
        "transfers": "Transfers to third countries", "retention": "Retention", "security": "Security measures",
        "none_declared": "none declared", "no_rule": "no retention rule declared",
        "members": "loyalty club members", "customers": "customers",
        "rule": "{action} {days} days after {after}",
        "delete": "Deleted", "anonymise": "Anonymised", "minimise": "Minimised",
        "after_collection": "collection", "after_last_activity": "the last activity",
        "after_withdrawal": "withdrawal of consent", "after_expiry": "expiry of consent",
        "after_consent_expiry": "expiry of consent",
        "sec_encryption": "Every personal field encrypted with AES-GCM under a per-subject key; "
                          "the key is destroyed on erasure",
        "sec_blind_index": "E-mail addresses found by a keyed blind index, never stored in clear",
        "sec_chains": "Hash-chained, append-only audit log and consent ledger",
        "sec_api_keys": "API keys with scopes; only their hashes are stored",
        "sec_tls": "TLS expected at the reverse proxy in front of the service",
    },
    "sv": {
        "retention_title": "Gallringsrapport",
        "processing_title": "Register över behandlingar (GDPR art. 30)",
        "period": "Period", "generated": "Per", "page": "Sida", "of": "av",
        "section": "Avsnitt", "purpose": "Ändamål", "category": "Kategori", "measure": "Mått", "value": "Värde",
        "chart": "Diagram", "table": "Siffror",
        "held": "Registrerade och uppgifter som finns, per ändamål och kategori",
        "age": "Uppgifternas ålder (från den registrerades tillkomst), per ändamål och kategori",
        "due": "Ska gallras enligt ändamålets regel (inom 30 och 90 dagar, redan förfallet)",
        "removed": "Raderat, anonymiserat eller minimerat av gallringskörningar under perioden",
        "erasures": "Raderingar under perioden, per månad",
        "holds": "Gällande rättsliga bevarandekrav, per krav och slutmånad",
        "consent": "Samtycken givna och återkallade, per ändamål och månad",
        "requests": "Öppna och försenade begäranden från registrerade, per typ",
        "none": "Inget under perioden.",
        "controller": "Personuppgiftsansvarig", "name": "Namn", "contact": "Kontakt",
        "dpo_email": "Dataskyddsombudets e-post", "address": "Adress", "legal_basis": "Rättslig grund",
        "data_categories": "Kategorier av personuppgifter", "subject_categories": "Kategorier av registrerade",
        "recipients": "Mottagare", "transfers": "Överföringar till tredjeland", "retention": "Lagringstid",
        "security": "Säkerhetsåtgärder", "none_declared": "inga angivna", "no_rule": "ingen gallringsregel angiven",
        "members": "medlemmar i kundklubben", "customers": "kunder",
        "rule": "{action} {days} dagar efter {after}",
        "delete": "Raderas", "anonymise": "Anonymiseras", "minimise": "Minimeras",
        "after_collection": "insamlingen", "after_last_activity": "senaste aktiviteten",
        "after_withdrawal": "återkallat samtycke", "after_expiry": "att samtycket löpt ut",
        "after_consent_expiry": "att samtycket löpt ut",
        "sec_encryption": "Varje personuppgift krypterad med AES-GCM under en nyckel per registrerad; "
                          "nyckeln förstörs vid radering",
        "sec_blind_index": "E-postadresser hittas via ett nycklat blint index, lagras aldrig i klartext",
        "sec_chains": "Hashkedjad logg och samtyckesliggare som bara kan läggas till",
        "sec_api_keys": "API-nycklar med behörigheter; bara deras hashvärden lagras",
        "sec_tls": "TLS förutsätts i den omvända proxyn framför tjänsten",
    },
}

SECURITY = ("sec_encryption", "sec_blind_index", "sec_chains", "sec_api_keys", "sec_tls")

LABELS: dict[str, dict[str, str]] = {
    "en": {
        # measures
        "subjects": "subjects", "fields": "fields",
        "lt_30d": "under 30 days", "30_180d": "30-180 days", "180_365d": "180-365 days", "1_2y": "1-2 years",
        "gt_2y": "over 2 years",
        "due_30d": "due within 30 days", "due_90d": "due within 90 days", "past_due": "already due",
        "delete": "deleted", "anonymise": "anonymised", "minimise": "minimised",
        "subjects_deleted": "subjects deleted", "subjects_anonymised": "subjects anonymised",
        "subjects_minimised": "subjects minimised", "fields_removed": "fields removed", "erased": "erased",
        "given": "given", "withdrawn": "withdrawn", "open": "open", "overdue": "overdue",
        # data categories
        "contact": "contact", "identity": "identity", "location": "location", "demographic": "demographic",
        "behaviour": "behaviour", "financial": "financial", "preference": "preference", "other": "other",
        # request types
        "access": "access", "erasure": "erasure", "rectification": "rectification", "restriction": "restriction",
        "portability": "portability", "objection": "objection",
    },
    "sv": {
        "subjects": "registrerade", "fields": "uppgifter",
        "lt_30d": "under 30 dagar", "30_180d": "30–180 dagar", "180_365d": "180–365 dagar", "1_2y": "1–2 år",
        "gt_2y": "över 2 år",
        "due_30d": "förfaller inom 30 dagar", "due_90d": "förfaller inom 90 dagar", "past_due": "redan förfallet",
        "delete": "raderade", "anonymise": "anonymiserade", "minimise": "minimerade",
        "subjects_deleted": "registrerade raderade", "subjects_anonymised": "registrerade anonymiserade",
        "subjects_minimised": "registrerade minimerade", "fields_removed": "uppgifter borttagna",
        "erased": "raderade", "given": "givna", "withdrawn": "återkallade", "open": "öppna", "overdue": "försenade",
        "contact": "kontakt", "identity": "identitet", "location": "plats", "demographic": "demografi",
        "behaviour": "beteende", "financial": "ekonomi", "preference": "preferenser", "other": "övrigt",
        "access": "tillgång", "erasure": "radering", "rectification": "rättelse", "restriction": "begränsning",
        "portability": "dataportabilitet", "objection": "invändning",
    },
}
"""The retention report's codes (measures, data categories, request types) in words; a
code missing here is shown as it is (a month, a legal hold's name)."""
