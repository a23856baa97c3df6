//! The notice to the customers a breach exposed (GDPR Art. 34): in
//! clear and plain language, what happened and when, which of their
//! data, what it may mean for them, what the company did and what they
//! can do, and whom to ask. In Swedish, Norwegian (Bokmål), German,
//! Dutch and English, from the same figures as the authority's draft;
//! and the list of recipients as CSV.
//!
//! The text is a draft: the company's name, its measures and its contact
//! point are placeholders to fill in before sending.

use crate::report::Report;
use crate::scope::AccountScope;
use vakt_event::event::category_weight;

/// A language of the notice.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Locale {
    Sv,
    Nb,
    De,
    Nl,
    En,
}

impl Locale {
    pub const ALL: [Locale; 5] = [Locale::Sv, Locale::Nb, Locale::De, Locale::Nl, Locale::En];

    pub fn as_str(self) -> &'static str {
        match self {
            Locale::Sv => "sv",
            Locale::Nb => "nb",
            Locale::De => "de",
            Locale::Nl => "nl",
            Locale::En => "en",
        }
    }

    pub fn parse(s: &str) -> Option<Locale> {
        Locale::ALL.into_iter().find(|l| l.as_str() == s)
    }

    fn text(self) -> &'static Text {
        match self {
            Locale::Sv => &SV,
            Locale::Nb => &NB,
            Locale::De => &DE,
            Locale::Nl => &NL,
            Locale::En => &EN,
        }
    }
}

/// The sentences of one language.
struct Text {
    title: &'static str,
    greeting: &'static str,
    what: &'static str,
    /// "{first}" and "{last}" are the dates.
    when: &'static str,
    data: &'static str,
    meaning: &'static str,
    done: &'static str,
    done_placeholder: &'static str,
    you: &'static str,
    advice_scams: &'static str,
    advice_id: &'static str,
    advice_card: &'static str,
    advice_password: &'static str,
    contact: &'static str,
    contact_placeholder: &'static str,
    closing: &'static str,
    categories: &'static [(&'static str, &'static str)],
    risk_id: &'static str,
    risk_card: &'static str,
    risk_password: &'static str,
    risk_scams: &'static str,
}

const EN: Text = Text {
    title: "Information about a personal data breach",
    greeting: "Dear customer,",
    what: "We are writing to tell you that some of your personal data was read by someone who had access to our customer records but no legitimate reason to read yours.",
    when: "It happened between {first} and {last}.",
    data: "The data concerned:",
    meaning: "What this may mean for you:",
    done: "What we have done:",
    done_placeholder: "_[the measures taken: the access stopped, the account closed, the police informed]_",
    you: "What you can do:",
    advice_scams: "Be wary of calls, text messages and e-mails that quote your details or ask for codes or passwords; we never ask for them.",
    advice_id: "Watch for credit applications or contracts you did not make, and consider a credit freeze.",
    advice_card: "Check your card statements and ask your bank to replace the card if you see a payment you did not make.",
    advice_password: "Change your password, and any other account where you used the same one.",
    contact: "If you have questions, contact:",
    contact_placeholder: "_[the data protection officer: name, e-mail, phone]_",
    closing: "We are sorry for the concern this may cause.",
    categories: &[
        ("name", "your name"),
        ("email", "your e-mail address"),
        ("phone", "your phone number"),
        ("address", "your postal address"),
        ("ticket", "your support cases"),
        ("imei", "your device's IMEI number"),
        ("driver_license", "your driving licence number"),
        ("password", "your password"),
        ("national_id", "your personal identity number"),
        ("payment_card", "your payment card details"),
    ],
    risk_id: "someone may try to take out credit or sign contracts in your name",
    risk_card: "someone may try to pay with your card",
    risk_password: "someone may try to sign in to your accounts",
    risk_scams: "you may receive scam calls, messages or e-mails that look genuine because they quote your details",
};

const SV: Text = Text {
    title: "Information om en personuppgiftsincident",
    greeting: "Hej,",
    what: "Vi vill berätta att några av dina personuppgifter har lästs av någon som hade tillgång till våra kunduppgifter men inget berättigat skäl att läsa dina.",
    when: "Det skedde mellan {first} och {last}.",
    data: "Uppgifterna som berörs:",
    meaning: "Vad det kan innebära för dig:",
    done: "Vad vi har gjort:",
    done_placeholder: "_[vidtagna åtgärder: åtkomsten stoppad, kontot stängt, polisanmälan gjord]_",
    you: "Vad du kan göra:",
    advice_scams: "Var vaksam mot samtal, sms och e-post som nämner dina uppgifter eller ber om koder eller lösenord; sådant frågar vi aldrig efter.",
    advice_id: "Håll utkik efter kreditansökningar eller avtal som du inte har gjort, och överväg en kreditspärr.",
    advice_card: "Granska dina kortutdrag och be din bank att byta kort om du ser en betalning som du inte har gjort.",
    advice_password: "Byt lösenord, även på andra konton där du har använt samma lösenord.",
    contact: "Om du har frågor, kontakta:",
    contact_placeholder: "_[dataskyddsombudet: namn, e-post, telefon]_",
    closing: "Vi beklagar den oro detta kan orsaka.",
    categories: &[
        ("name", "ditt namn"),
        ("email", "din e-postadress"),
        ("phone", "ditt telefonnummer"),
        ("address", "din postadress"),
        ("ticket", "dina supportärenden"),
        ("imei", "din enhets IMEI-nummer"),
        ("driver_license", "ditt körkortsnummer"),
        ("password", "ditt lösenord"),
        ("national_id", "ditt personnummer"),
        ("payment_card", "dina kortuppgifter"),
    ],
    risk_id: "någon kan försöka ta krediter eller teckna avtal i ditt namn",
    risk_card: "någon kan försöka betala med ditt kort",
    risk_password: "någon kan försöka logga in på dina konton",
    risk_scams: "du kan få bedrägliga samtal, meddelanden eller e-post som verkar äkta eftersom de nämner dina uppgifter",
};

const NB: Text = Text {
    title: "Informasjon om brudd på personopplysningssikkerheten",
    greeting: "Hei,",
    what: "Vi vil fortelle deg at noen av personopplysningene dine er lest av noen som hadde tilgang til kundeopplysningene våre, men ingen saklig grunn til å lese dine.",
    when: "Det skjedde mellom {first} og {last}.",
    data: "Opplysningene det gjelder:",
    meaning: "Hva dette kan bety for deg:",
    done: "Hva vi har gjort:",
    done_placeholder: "_[tiltak som er satt i verk: tilgangen stanset, kontoen stengt, politiet varslet]_",
    you: "Hva du kan gjøre:",
    advice_scams: "Vær på vakt mot samtaler, SMS og e-post som viser til opplysningene dine eller ber om koder eller passord; det spør vi aldri om.",
    advice_id: "Følg med på kredittsøknader eller avtaler du ikke har inngått, og vurder kredittsperre.",
    advice_card: "Sjekk kontoutskriftene dine og be banken om nytt kort hvis du ser en betaling du ikke har gjort.",
    advice_password: "Bytt passord, også på andre kontoer der du har brukt det samme.",
    contact: "Har du spørsmål, kontakt:",
    contact_placeholder: "_[personvernombudet: navn, e-post, telefon]_",
    closing: "Vi beklager den uroen dette kan skape.",
    categories: &[
        ("name", "navnet ditt"),
        ("email", "e-postadressen din"),
        ("phone", "telefonnummeret ditt"),
        ("address", "postadressen din"),
        ("ticket", "kundesakene dine"),
        ("imei", "IMEI-nummeret til enheten din"),
        ("driver_license", "førerkortnummeret ditt"),
        ("password", "passordet ditt"),
        ("national_id", "fødselsnummeret ditt"),
        ("payment_card", "kortopplysningene dine"),
    ],
    risk_id: "noen kan forsøke å ta opp kreditt eller inngå avtaler i ditt navn",
    risk_card: "noen kan forsøke å betale med kortet ditt",
    risk_password: "noen kan forsøke å logge inn på kontoene dine",
    risk_scams: "du kan få svindelforsøk på telefon, SMS eller e-post som virker ekte fordi de viser til opplysningene dine",
};

const DE: Text = Text {
    title: "Information über eine Verletzung des Schutzes personenbezogener Daten",
    greeting: "Sehr geehrte Kundin, sehr geehrter Kunde,",
    what: "wir möchten Sie darüber informieren, dass einige Ihrer personenbezogenen Daten von jemandem gelesen wurden, der Zugang zu unseren Kundendaten, aber keinen berechtigten Grund hatte, Ihre Daten zu lesen.",
    when: "Dies geschah zwischen dem {first} und dem {last}.",
    data: "Betroffene Daten:",
    meaning: "Was das für Sie bedeuten kann:",
    done: "Was wir getan haben:",
    done_placeholder: "_[ergriffene Maßnahmen: Zugriff gesperrt, Konto geschlossen, Anzeige erstattet]_",
    you: "Was Sie tun können:",
    advice_scams: "Seien Sie vorsichtig bei Anrufen, SMS und E-Mails, die Ihre Daten nennen oder nach Codes oder Passwörtern fragen; danach fragen wir nie.",
    advice_id: "Achten Sie auf Kreditanträge oder Verträge, die Sie nicht abgeschlossen haben.",
    advice_card: "Prüfen Sie Ihre Kartenabrechnungen und lassen Sie die Karte von Ihrer Bank ersetzen, wenn Sie eine Zahlung sehen, die Sie nicht getätigt haben.",
    advice_password: "Ändern Sie Ihr Passwort, auch bei anderen Konten, für die Sie dasselbe verwenden.",
    contact: "Bei Fragen wenden Sie sich an:",
    contact_placeholder: "_[den Datenschutzbeauftragten: Name, E-Mail, Telefon]_",
    closing: "Wir bedauern die Sorge, die Ihnen dies bereiten kann.",
    categories: &[
        ("name", "Ihr Name"),
        ("email", "Ihre E-Mail-Adresse"),
        ("phone", "Ihre Telefonnummer"),
        ("address", "Ihre Postanschrift"),
        ("ticket", "Ihre Serviceanfragen"),
        ("imei", "die IMEI-Nummer Ihres Geräts"),
        ("driver_license", "Ihre Führerscheinnummer"),
        ("password", "Ihr Passwort"),
        ("national_id", "Ihre Ausweis- oder Identifikationsnummer"),
        ("payment_card", "Ihre Zahlungskartendaten"),
    ],
    risk_id: "jemand könnte versuchen, in Ihrem Namen Kredite aufzunehmen oder Verträge abzuschließen",
    risk_card: "jemand könnte versuchen, mit Ihrer Karte zu bezahlen",
    risk_password: "jemand könnte versuchen, sich bei Ihren Konten anzumelden",
    risk_scams: "Sie könnten betrügerische Anrufe, Nachrichten oder E-Mails erhalten, die echt wirken, weil sie Ihre Daten nennen",
};

const NL: Text = Text {
    title: "Informatie over een datalek",
    greeting: "Beste klant,",
    what: "Wij laten u weten dat een deel van uw persoonsgegevens is bekeken door iemand die toegang had tot onze klantgegevens, maar geen gerechtvaardigde reden had om die van u in te zien.",
    when: "Dit gebeurde tussen {first} en {last}.",
    data: "Om deze gegevens gaat het:",
    meaning: "Wat dit voor u kan betekenen:",
    done: "Wat wij hebben gedaan:",
    done_placeholder: "_[genomen maatregelen: toegang geblokkeerd, account gesloten, aangifte gedaan]_",
    you: "Wat u kunt doen:",
    advice_scams: "Wees alert op telefoontjes, sms'jes en e-mails die uw gegevens noemen of om codes of wachtwoorden vragen; daar vragen wij nooit om.",
    advice_id: "Let op kredietaanvragen of contracten die u niet zelf hebt afgesloten.",
    advice_card: "Controleer uw afschriften en vraag uw bank om een nieuwe kaart als u een betaling ziet die u niet hebt gedaan.",
    advice_password: "Wijzig uw wachtwoord, ook bij andere accounts waar u hetzelfde gebruikt.",
    contact: "Hebt u vragen, neem dan contact op met:",
    contact_placeholder: "_[de functionaris gegevensbescherming: naam, e-mail, telefoon]_",
    closing: "Wij betreuren de zorgen die dit kan veroorzaken.",
    categories: &[
        ("name", "uw naam"),
        ("email", "uw e-mailadres"),
        ("phone", "uw telefoonnummer"),
        ("address", "uw postadres"),
        ("ticket", "uw klantvragen"),
        ("imei", "het IMEI-nummer van uw toestel"),
        ("driver_license", "uw rijbewijsnummer"),
        ("password", "uw wachtwoord"),
        ("national_id", "uw burgerservicenummer"),
        ("payment_card", "uw betaalkaartgegevens"),
    ],
    risk_id: "iemand kan proberen op uw naam krediet aan te vragen of contracten af te sluiten",
    risk_card: "iemand kan proberen met uw kaart te betalen",
    risk_password: "iemand kan proberen in te loggen op uw accounts",
    risk_scams: "u kunt oplichtingspogingen krijgen per telefoon, bericht of e-mail die echt lijken omdat ze uw gegevens noemen",
};

/// The categories of personal data the incident exposed: those of the
/// customers it named and those of reads that named none.
fn categories(scope: &AccountScope) -> Vec<&str> {
    let mut all: Vec<&str> = scope
        .by_category
        .keys()
        .chain(scope.unlisted_by_category.keys())
        .map(String::as_str)
        .collect();
    all.sort_by_key(|c| (std::cmp::Reverse(category_weight(c)), *c));
    all.dedup();
    all
}

/// The notice in Markdown, in `locale`.
pub fn customer_notice(r: &Report, locale: Locale) -> String {
    let t = locale.text();
    let (first, last) = match &r.scope {
        Some(sc) => (
            sc.customers
                .iter()
                .map(|c| c.first)
                .min()
                .unwrap_or(r.alert.first_seen),
            sc.customers
                .iter()
                .map(|c| c.last)
                .max()
                .unwrap_or(r.alert.timestamp),
        ),
        None => (r.alert.first_seen, r.alert.timestamp),
    };
    let date = |ts: vakt_event::Timestamp| ts.to_string().chars().take(10).collect::<String>();
    let cats = r.scope.as_ref().map(categories).unwrap_or_default();
    let has = |c: &str| cats.contains(&c);
    let mut s = format!("# {}\n\n{}\n\n{} ", t.title, t.greeting, t.what);
    s += &t
        .when
        .replace("{first}", &date(first))
        .replace("{last}", &date(last));
    s += &format!("\n\n**{}**\n\n", t.data);
    for c in &cats {
        let name = t
            .categories
            .iter()
            .find(|(k, _)| k == c)
            .map_or(*c, |(_, v)| *v);
        s += &format!("- {name}\n");
    }
    if cats.is_empty() {
        s += "- _[to be established]_\n";
    }
    s += &format!("\n**{}**\n\n", t.meaning);
    if has("national_id") || has("driver_license") {
        s += &format!("- {}\n", t.risk_id);
    }
    if has("payment_card") {
        s += &format!("- {}\n", t.risk_card);
    }
    if has("password") {
        s += &format!("- {}\n", t.risk_password);
    }
    s += &format!("- {}\n", t.risk_scams);
    s += &format!(
        "\n**{}**\n\n{}\n\n**{}**\n\n- {}\n",
        t.done, t.done_placeholder, t.you, t.advice_scams
    );
    if has("national_id") || has("driver_license") {
        s += &format!("- {}\n", t.advice_id);
    }
    if has("payment_card") {
        s += &format!("- {}\n", t.advice_card);
    }
    if has("password") {
        s += &format!("- {}\n", t.advice_password);
    }
    s += &format!(
        "\n**{}** {}\n\n{}\n",
        t.contact, t.contact_placeholder, t.closing
    );
    s
}

/// The recipients: one row per customer the incident's account read,
/// with the categories and the first and last exposure. Reads that named
/// no customers cannot be listed; the draft counts them.
pub fn recipients_csv(scope: &AccountScope) -> String {
    let mut out = String::from("customer_id,categories,first_exposure,last_exposure\n");
    for c in &scope.customers {
        let cats: Vec<&str> = c.categories.iter().map(String::as_str).collect();
        // Ids come from the events: quoted when they hold a comma or a
        // quote, and one a spreadsheet would take for a formula is
        // prefixed with `'` (CSV injection).
        let mut id = c.customer.clone();
        if id.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            id.insert(0, '\'');
        }
        if id.contains([',', '"', '\n', '\r']) {
            id = format!("\"{}\"", id.replace('"', "\"\""));
        }
        let cats = cats.join(",").replace('"', "\"\"");
        out += &format!("{id},\"{cats}\",{},{}\n", c.first, c.last);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::CustomerExposure;
    use std::collections::{BTreeMap, BTreeSet};
    use vakt_event::Timestamp;

    #[test]
    fn recipients_are_quoted_and_formulas_defused() {
        let c = |id: &str| CustomerExposure {
            customer: id.into(),
            categories: BTreeSet::from(["name".to_owned(), "phone".to_owned()]),
            first: Timestamp(0),
            last: Timestamp(0),
            reads: 1,
        };
        let scope = AccountScope {
            account: "a".into(),
            since: Timestamp(0),
            until: Timestamp(0),
            accesses: 3,
            unlisted_records: 0,
            unlisted_by_category: BTreeMap::new(),
            unlisted_largest: 0,
            customers: vec![c("C-1"), c("=HYPERLINK(\"x\")"), c("a,b")],
            by_category: BTreeMap::new(),
            source_ips: BTreeMap::new(),
        };
        let csv = recipients_csv(&scope);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "customer_id,categories,first_exposure,last_exposure"
        );
        assert!(lines[1].starts_with("C-1,\"name,phone\","), "{csv}");
        assert!(lines[2].starts_with("\"'=HYPERLINK(\"\"x\"\")\","), "{csv}");
        assert!(lines[3].starts_with("\"a,b\","), "{csv}");
    }
}
