"""The portal's words in English and German, and how a request's language is chosen."""

from __future__ import annotations

LANGUAGES = ("en", "de")
DEFAULT_LANGUAGE = "en"

MESSAGES: dict[str, dict[str, str]] = {
    "title": {"en": "Your privacy choices", "de": "Ihre Datenschutz-Einstellungen"},
    "intro": {
        "en": "Here you decide whether we may use your data for anonymized mobility statistics, "
              "and whether you would like offers based on where you are.",
        "de": "Hier entscheiden Sie, ob wir Ihre Daten für anonymisierte Mobilitätsstatistiken nutzen dürfen "
              "und ob Sie Angebote passend zu Ihrem Aufenthaltsort erhalten möchten.",
    },
    "other_language": {"en": "Deutsch", "de": "English"},
    "other_language_code": {"en": "de", "de": "en"},
    "error_summary": {"en": "There is a problem", "de": "Es gibt ein Problem"},
    "start_heading": {"en": "Sign in with your mobile number", "de": "Mit Ihrer Mobilfunknummer anmelden"},
    "start_text": {
        "en": "We will send a one-time code by text message to prove that the number is yours.",
        "de": "Wir schicken Ihnen einen Einmal-Code per SMS, damit Sie zeigen können, dass die Nummer Ihnen gehört.",
    },
    "msisdn_label": {"en": "Your mobile number", "de": "Ihre Mobilfunknummer"},
    "msisdn_hint": {
        "en": "In international format, for example +49 170 1234567.",
        "de": "Im internationalen Format, zum Beispiel +49 170 1234567.",
    },
    "send_code": {"en": "Send me a code", "de": "Code senden"},
    "err_msisdn": {
        "en": "Enter a mobile number in international format: + or 00, then the country code and the number, "
              "8 to 15 digits in all (for example +49 170 1234567).",
        "de": "Geben Sie eine Mobilfunknummer im internationalen Format ein: + oder 00, dann Ländervorwahl und "
              "Nummer, insgesamt 8 bis 15 Ziffern (zum Beispiel +49 170 1234567).",
    },
    "err_rate": {
        "en": "Too many codes have been requested. Please wait an hour, then try again.",
        "de": "Es wurden zu viele Codes angefordert. Bitte warten Sie eine Stunde und versuchen Sie es dann erneut.",
    },
    "verify_heading": {"en": "Enter your code", "de": "Code eingeben"},
    "sent_notice": {
        "en": "If {number} is one of our numbers, we have just sent it a text message with a 6-digit code. "
              "The code is valid for {minutes} minutes.",
        "de": "Wenn {number} eine unserer Nummern ist, haben wir gerade eine SMS mit einem 6-stelligen Code "
              "daran geschickt. Der Code ist {minutes} Minuten gültig.",
    },
    "code_label": {"en": "6-digit code", "de": "6-stelliger Code"},
    "code_hint": {"en": "You find it in the text message.", "de": "Sie finden ihn in der SMS."},
    "confirm": {"en": "Confirm", "de": "Bestätigen"},
    "restart": {
        "en": "Use another number or get a new code",
        "de": "Andere Nummer verwenden oder neuen Code anfordern",
    },
    "err_code_format": {
        "en": "Enter the 6 digits from the text message.",
        "de": "Geben Sie die 6 Ziffern aus der SMS ein.",
    },
    "err_code_wrong": {
        "en": "This code is not correct. Attempts left: {n}.",
        "de": "Dieser Code ist nicht richtig. Verbleibende Versuche: {n}.",
    },
    "err_code_expired": {
        "en": "This code has expired. Please get a new code.",
        "de": "Dieser Code ist abgelaufen. Bitte fordern Sie einen neuen Code an.",
    },
    "err_code_locked": {
        "en": "Too many wrong attempts. Please get a new code.",
        "de": "Zu viele falsche Versuche. Bitte fordern Sie einen neuen Code an.",
    },
    "choices_heading": {"en": "Your choices for {number}", "de": "Ihre Einstellungen für {number}"},
    "analytics_legend": {
        "en": "Use my data for anonymized analytics",
        "de": "Meine Daten für anonymisierte Statistiken nutzen",
    },
    "analytics_help": {
        "en": "We count how many people are in an area at a time. Only totals of at least {k} people are "
              "passed on, never anything about you alone. If you say no, your data is left out from the next "
              "daily run on, also when earlier days are calculated again.",
        "de": "Wir zählen, wie viele Menschen zu einer Zeit in einem Gebiet sind. Weitergegeben werden nur "
              "Summen von mindestens {k} Personen, nie etwas über Sie allein. Wenn Sie Nein sagen, lassen wir "
              "Ihre Daten ab dem nächsten täglichen Lauf weg, auch wenn frühere Tage neu berechnet werden.",
    },
    "analytics_yes": {"en": "Yes, my data may be used", "de": "Ja, meine Daten dürfen genutzt werden"},
    "analytics_no": {"en": "No, leave my data out (opt out)", "de": "Nein, meine Daten weglassen (Widerspruch)"},
    "offers_legend": {"en": "Send me location offers", "de": "Mir Angebote zu meinem Aufenthaltsort senden"},
    "offers_help": {
        "en": "Offers from partners near where you are, by text message. Only if you say yes, and only for the "
              "time after you said yes.",
        "de": "Angebote von Partnern in Ihrer Nähe, per SMS. Nur wenn Sie Ja sagen, und nur für die Zeit, "
              "nachdem Sie Ja gesagt haben.",
    },
    "offers_yes": {"en": "Yes, send me offers", "de": "Ja, Angebote senden"},
    "offers_no": {"en": "No offers", "de": "Keine Angebote"},
    "err_choice": {"en": "Choose one of the two options.", "de": "Wählen Sie eine der beiden Möglichkeiten."},
    "save": {"en": "Save my choices", "de": "Einstellungen speichern"},
    "saved": {
        "en": "Saved. Your choices apply from the next daily run.",
        "de": "Gespeichert. Ihre Einstellungen gelten ab dem nächsten täglichen Lauf.",
    },
    "unchanged": {
        "en": "Nothing to save: these already were your choices.",
        "de": "Nichts zu speichern: Das waren bereits Ihre Einstellungen.",
    },
    "last_changed": {"en": "Last changed on {when} (UTC).", "de": "Zuletzt geändert am {when} (UTC)."},
    "never_changed": {
        "en": "You have not made a choice yet; shown is what applies until you do.",
        "de": "Sie haben noch keine Wahl getroffen; angezeigt ist, was bis dahin gilt.",
    },
    "logout": {"en": "Sign out", "de": "Abmelden"},
    "signed_out": {"en": "You have been signed out.", "de": "Sie wurden abgemeldet."},
    "session_expired": {
        "en": "Your session has ended. Please start again.",
        "de": "Ihre Sitzung ist abgelaufen. Bitte beginnen Sie von vorn.",
    },
    "forbidden_heading": {"en": "This form cannot be accepted", "de": "Dieses Formular kann nicht angenommen werden"},
    "forbidden_text": {
        "en": "The form was not sent from this page, or it has expired. Please go back to the start page "
              "and try again.",
        "de": "Das Formular wurde nicht von dieser Seite gesendet oder ist abgelaufen. Bitte gehen Sie zurück "
              "zur Startseite und versuchen Sie es erneut.",
    },
    "back_to_start": {"en": "Back to the start page", "de": "Zurück zur Startseite"},
    "sms_text": {
        "en": "Your code for the privacy portal: {code}. Valid for {minutes} minutes. Never share it.",
        "de": "Ihr Code für das Datenschutz-Portal: {code}. {minutes} Minuten gültig. Geben Sie ihn nicht weiter.",
    },
    "footer": {
        "en": "You can change your choices at any time. We store your number only to carry out your choices.",
        "de": "Sie können Ihre Einstellungen jederzeit ändern. Wir speichern Ihre Nummer nur, um Ihre Wahl "
              "umzusetzen.",
    },
}


def translate(lang: str, key: str, **params: object) -> str:
    text = MESSAGES[key].get(lang) or MESSAGES[key][DEFAULT_LANGUAGE]
    return text.format(**params) if params else text


def choose_language(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    """``?lang=`` first, then the remembered choice, then the browser's Accept-Language."""
    for candidate in (query, cookie):
        if candidate in LANGUAGES:
            return candidate
    best, best_q = DEFAULT_LANGUAGE, -1.0
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        code = tag.strip().lower().split("-")[0]
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if code in LANGUAGES and q > best_q:
            best, best_q = code, q
    return best
