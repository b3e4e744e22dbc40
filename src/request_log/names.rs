//! Which names hold secrets: JSON keys, header names, query and form parameters, and the names
//! before `=` or `:` in free text (pure Rust, unit-tested without a server).
//!
//! A name is read as words, whatever its spelling: `privateKey`, `PRIVATE_KEY`, `private-key`,
//! `Private Key` and `private%5Fkey` are the same two words.  A word is a secret's when it is
//! one of the strong words (`token`, `secret`, `password` and its abbreviations and translations,
//! `credential`, …), also at the end of a compound (`accesstoken`, `dbpassword`), or one of the
//! weak words that count only alone (`pwd`, `pw`, `pass`, `otp`, `pin`, `cvv`, `sig`, `auth`, and
//! `key` as the last word, unless it says what kind of key: `public_key`, `idempotency_key`,
//! `cache_key`).  A last word that describes the secret rather than holding it (`token_type`,
//! `key_id`, `password_changed_at`, `expires_in`) makes the name an ordinary one.

/// What a name says about its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// A password, PIN, one-time code or card code: any value is a secret.
    Password,
    /// A token, secret, key or credential.
    Secret,
    /// A header whose whole value is a credential (`Authorization`, `Cookie`, …): in text, the
    /// rest of the line.
    Header,
    /// A payment card number or its security code.
    Card,
    /// A provider's name (`heroku`, `datadog`): the value is a secret when it looks like one.
    Provider,
    /// A provider's name of four to six letters inside a word (`xkrakenv4`): weaker evidence,
    /// so the value must look more strongly like a credential.
    ProviderInWord,
}

impl Class {
    /// The id of the rule that matched, as `tenancy.redact(…, explain => true)` reports it.
    pub fn rule(self) -> &'static str {
        match self {
            Class::Password => "name-password",
            Class::Secret => "name-secret",
            Class::Header => "name-credential-header",
            Class::Card => "name-card",
            Class::Provider | Class::ProviderInWord => "name-provider",
        }
    }

    /// Whether the value decides (a provider's name alone does not make a secret).
    pub fn by_value(self) -> bool {
        matches!(self, Class::Provider | Class::ProviderInWord)
    }

    /// Every name rule id (for `tenancy.redaction_rules()` and the disabling setting).
    pub const RULES: [Class; 5] = [
        Class::Password,
        Class::Secret,
        Class::Header,
        Class::Card,
        Class::Provider,
    ];
}

/// Whole names (words joined, lowercase) of headers that carry a credential.
const HEADERS: &[&str] = &[
    "authorization",
    "proxyauthorization",
    "cookie",
    "setcookie",
    "wwwauthenticate",
    "xauthorization",
    "authentication",
    "cookies",
];

/// Whole names (words joined) that are a secret's whatever their last word.
const SECRET_NAMES: &[&str] = &[
    "xapikey",
    "apikey",
    "xauthkey",
    "xauthtoken",
    "ocpapimsubscriptionkey",
    "xamzsecuritytoken",
    "xamzsignature",
    "xamzcredential",
    "xgoogapikey",
    "privatekey",
    "secretkey",
    "accesskey",
    "clientsecret",
    "sessionkey",
    "signingkey",
    "masterkey",
    "encryptionkey",
    "webhooksecret",
    // Session cookies: whoever holds one is logged in.
    "sessionid",
    "phpsessid",
    "jsessionid",
    "aspnetsessionid",
    "connectsid",
    "laravelsession",
    "sessiontoken",
];

/// Strong words: a secret's also in a compound that ends with them (`accesstoken`).
/// (word, class)
const STRONG: &[(&str, Class)] = &[
    ("password", Class::Password),
    ("passwd", Class::Password),
    ("passphrase", Class::Password),
    ("passcode", Class::Password),
    ("passwort", Class::Password),   // de
    ("kennwort", Class::Password),   // de
    ("contrasena", Class::Password), // es (ñ read as n)
    ("contraseña", Class::Password),
    ("senha", Class::Password),       // pt
    ("wachtwoord", Class::Password),  // nl
    ("motdepasse", Class::Password),  // fr (mot de passe, joined)
    ("haslo", Class::Password),       // pl
    ("hasło", Class::Password),       // pl
    ("heslo", Class::Password),       // cs, sk
    ("losenord", Class::Password),    // sv
    ("lösenord", Class::Password),    // sv
    ("salasana", Class::Password),    // fi
    ("passord", Class::Password),     // no
    ("adgangskode", Class::Password), // da
    ("jelszo", Class::Password),      // hu
    ("jelszó", Class::Password),      // hu
    ("parola", Class::Password),      // it, ro, tr
    ("lozinka", Class::Password),     // hr, sr
    ("geslo", Class::Password),       // sl
    ("salasõna", Class::Password),    // et
    ("parole", Class::Password),      // lv
    ("slaptazodis", Class::Password), // lt
    ("slaptažodis", Class::Password), // lt
    ("token", Class::Secret),
    ("secret", Class::Secret),
    ("geheimnis", Class::Secret), // de
    ("secreto", Class::Secret),   // es
    ("segreto", Class::Secret),   // it
    ("apikey", Class::Secret),
    ("privatekey", Class::Secret),
    ("secretkey", Class::Secret),
    ("credential", Class::Secret),
    ("credentials", Class::Secret),
    ("cardnumber", Class::Card),
    ("ccnumber", Class::Card),
    ("creditcard", Class::Card),
];

/// Weak words: a secret's only as a whole word.
const WEAK: &[(&str, Class)] = &[
    ("pwd", Class::Password),
    ("pw", Class::Password),
    ("pass", Class::Password),
    ("pin", Class::Password),
    ("otp", Class::Password),
    ("totp", Class::Password),
    ("hotp", Class::Password),
    ("mfa", Class::Password),
    ("cvv", Class::Card),
    ("cvv2", Class::Card),
    ("cvc", Class::Card),
    ("cvc2", Class::Card),
    ("csc", Class::Card),
    ("pan", Class::Card),
    ("ccnum", Class::Card),
    ("sig", Class::Secret),
    ("signature", Class::Secret),
    ("auth", Class::Secret),
    ("creds", Class::Secret),
    ("jwt", Class::Secret),
    ("bearer", Class::Secret),
    ("sas", Class::Secret),
];

/// Last words that describe a secret without holding it: `token_type`, `key_id`,
/// `password_changed_at`, `token_expires_in`, `secret_name`.
const DESCRIPTIVE: &[&str] = &[
    "id",
    "ids",
    "type",
    "types",
    "kind",
    "name",
    "names",
    "version",
    "count",
    "length",
    "len",
    "size",
    "expires",
    "expiry",
    "expiration",
    "exp",
    "ttl",
    "in",
    "at",
    "on",
    "url",
    "uri",
    "endpoint",
    "enabled",
    "required",
    "policy",
    "strength",
    "format",
    "algorithm",
    "alg",
    "path",
    "prefix",
    "last4",
    "brand",
    "set",
    "changed",
    "updated",
    "created",
    "rotated",
    "status",
    "scope",
    "scopes",
    "header",
    "field",
    "param",
    "file",
    "filename",
    "variable",
    "var",
    "source",
];

/// Last words that make a provider's name ordinary (`aws-cli@sha256`, `stripe_event_hash`): a
/// hash of a provider's object.  Not for secret words: `token_hash` (Supabase's e-mail link
/// credential), `password_digest`, `pin_sha256` are a secret's, or as good as one.
const HASHES: &[&str] = &[
    "hash",
    "digest",
    "checksum",
    "md5",
    "sha1",
    "sha256",
    "sha512",
    "fingerprint",
    "etag",
];

/// First words that make `… key` an ordinary key: `public_key`, `idempotency_key`.
const ORDINARY_KEYS: &[&str] = &[
    "public",
    "publishable",
    "pub",
    "idempotency",
    "cache",
    "sort",
    "partition",
    "primary",
    "foreign",
    "routing",
    "object",
    "dedup",
    "dedupe",
    "deduplication",
    "lookup",
    "unique",
    "shard",
    "group",
    "row",
    "map",
    "i18n",
    "translation",
    "range",
    "cluster",
    "index",
    "search",
    "event",
    "message",
    "record",
    "entity",
    "resource",
    "composite",
    "distribution",
    "hash",
    "natural",
    "surrogate",
    "business",
    "s3",
    "storage",
    "bucket",
    "file",
    "schema",
    "sequence",
];

/// Words that, beside the plural `tokens`, make a usage count (`prompt_tokens`, `max_tokens`).
const TOKEN_COUNTS: &[&str] = &[
    "prompt",
    "completion",
    "total",
    "max",
    "min",
    "input",
    "output",
    "cached",
    "reasoning",
    "used",
    "remaining",
    "limit",
    "num",
    "number",
    "audio",
    "text",
    "image",
];

/// Provider names: a name containing one (`HEROKU_API`, `datadog-app`) is a credential's when its
/// value looks like one.  Matched as substrings of the name's words joined (`new_relic` is
/// `newrelic`).
pub const PROVIDERS: &[&str] = &[
    "adafruit",
    "adobe",
    "airtable",
    "algolia",
    "alibaba",
    "aliyun",
    "asana",
    "atlassian",
    "confluence",
    "jira",
    "beamer",
    "bitbucket",
    "bittrex",
    "meraki",
    "cloudflare",
    "codecov",
    "cohere",
    "coinbase",
    "confluent",
    "contentful",
    "datadog",
    "discord",
    "dropbox",
    "droneci",
    "etsy",
    "facebook",
    "fastly",
    "finicity",
    "finnhub",
    "flickr",
    "freshbooks",
    "gitter",
    "gocardless",
    "heroku",
    "hubspot",
    "intercom",
    "jfrog",
    "artifactory",
    "bintray",
    "xray",
    "kraken",
    "kucoin",
    "launchdarkly",
    "linear",
    "linkedin",
    "lob",
    "looker",
    "mailchimp",
    "mailgun",
    "mapbox",
    "mattermost",
    "messagebird",
    "netlify",
    "newrelic",
    "nytimes",
    "newyorktimes",
    "okta",
    "plaid",
    "privateai",
    "rapidapi",
    "sendbird",
    "sentry",
    "squarespace",
    "sumo",
    "telegram",
    "telegr",
    "travis",
    "twitch",
    "twitter",
    "yandex",
    "zendesk",
    "stripe",
    "twilio",
    "sendgrid",
    "slack",
    "github",
    "gitlab",
    "openai",
    "anthropic",
    "mistral",
    "azure",
    "aws",
    "gcp",
    "vercel",
    "supabase",
    "firebase",
    "pusher",
    "rollbar",
    "bugsnag",
    "honeycomb",
    "pagerduty",
    "opsgenie",
    "postmark",
    "mandrill",
    "vonage",
    "nexmo",
    "mixpanel",
    "amplitude",
    "snyk",
    "sonar",
    "circleci",
    "buildkite",
    "npm",
    "pypi",
    "braintree",
    "paypal",
    "adyen",
    "mollie",
    "razorpay",
    "shopify",
    "auth0",
    "cloudinary",
    "contribsys",
    "dnkey",
];

/// The most of a name that is read: longer "names" are text, not names.
pub const MAX_NAME: usize = 128;

/// At most this many words of a name are looked at.
const MAX_WORDS: usize = 12;

/// `name` as lowercase words (at most [`MAX_WORDS`], the last ones): split at every character
/// that is not a letter or digit and between a lowercase letter and an uppercase one
/// (`privateKey`), or an uppercase run and a capitalised word (`APIKey`).  `%XX` escapes of
/// ASCII are decoded first.  Non-ASCII letters are kept (and lowercased).
pub fn words(name: &str) -> Vec<String> {
    let decoded = percent_decode(name);
    let chars: Vec<char> = decoded.chars().collect();
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if !cur.is_empty() && c.is_uppercase() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower) {
                out.push(std::mem::take(&mut cur));
            }
        }
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    if out.len() > MAX_WORDS {
        out.drain(..out.len() - MAX_WORDS);
    }
    out
}

/// `%XX` escapes of ASCII characters decoded (others left as they are).
fn percent_decode(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('%') {
        return std::borrow::Cow::Borrowed(s);
    }
    // Decoding ASCII escapes of valid UTF-8 leaves it valid.
    let (bytes, _) = super::scan::percent_decoded(s.as_bytes());
    std::borrow::Cow::Owned(String::from_utf8(bytes).unwrap_or_else(|_| s.to_string()))
}

/// Whether `word` is `strong`, its plural, or a compound ending with it (`accesstoken`).
fn strong_match(word: &str, strong: &str) -> bool {
    word == strong
        || word.strip_suffix('s') == Some(strong)
        || (word.len() > strong.len() + 1 && word.ends_with(strong))
}

/// The class of a name, or `None` for an ordinary one.  `extra`: lowercase substrings from
/// `tenancy.redact_keys` (matched against the name lowercased with `-` read as `_`), which make
/// any name containing them a [`Class::Secret`].
pub fn classify(name: &str, extra: &[String]) -> Option<Class> {
    if name.len() > MAX_NAME || name.is_empty() {
        return None;
    }
    if !extra.is_empty() {
        let k: String = name
            .chars()
            .map(|c| {
                if c == '-' {
                    '_'
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect();
        if extra
            .iter()
            .any(|p| !p.is_empty() && k.contains(p.as_str()))
        {
            return Some(Class::Secret);
        }
    }
    // No word of any list is shorter than two letters: `2026-11-05T12` (before a time's `:`)
    // holds none.
    if !name
        .as_bytes()
        .windows(2)
        .any(|w| w[0].is_ascii_alphabetic() && w[1].is_ascii_alphabetic())
        && name.is_ascii()
        && !name.contains('%')
    {
        return None;
    }
    // The same few key names come back in every summary: each backend keeps what it decided,
    // under a keyed hash of the name (SipHash with this process's random key), so that no name,
    // which may be a token used as a key, is kept for the life of a backend.
    thread_local! {
        static SEEN: std::cell::RefCell<(std::collections::hash_map::RandomState, std::collections::HashMap<u64, Option<Class>>)> =
            std::cell::RefCell::new(Default::default());
    }
    const SEEN_MAX: usize = 1024;
    let key = SEEN.with(|s| {
        use std::hash::BuildHasher;
        s.borrow().0.hash_one(name)
    });
    if let Some(known) = SEEN.with(|s| s.borrow().1.get(&key).copied()) {
        return known;
    }
    let class = classify_words(&words(name));
    SEEN.with(|s| {
        let mut s = s.borrow_mut();
        if s.1.len() >= SEEN_MAX {
            s.1.clear();
        }
        s.1.insert(key, class);
    });
    class
}

/// The provider-name matcher, built once per backend.
fn providers() -> &'static aho_corasick::AhoCorasick {
    static AC: std::sync::OnceLock<aho_corasick::AhoCorasick> = std::sync::OnceLock::new();
    AC.get_or_init(|| {
        aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(PROVIDERS)
            .expect("the provider names are plain literals")
    })
}

fn classify_words(words: &[String]) -> Option<Class> {
    let joined: String = words.concat();
    if HEADERS.contains(&joined.as_str()) {
        return Some(Class::Header);
    }
    if SECRET_NAMES.contains(&joined.as_str()) {
        return Some(Class::Secret);
    }
    let last = words.last()?;
    if words.len() > 1 && DESCRIPTIVE.contains(&last.as_str()) {
        return None;
    }
    let has = |w: &str| words.iter().any(|x| x == w);
    // Usage counts: prompt_tokens, max_tokens, totalTokens.
    if has("tokens") && words.iter().any(|w| TOKEN_COUNTS.contains(&w.as_str())) {
        return None;
    }
    // Card numbers: credit_card_number, card_no, cardNum.
    if (has("card") || has("cc") || has("credit"))
        && (has("number") || has("num") || has("no") || has("nr"))
    {
        return Some(Class::Card);
    }
    for (strong, class) in STRONG {
        if words.iter().any(|w| strong_match(w, strong))
            || (strong.len() >= 8 && joined.contains(strong))
        {
            return Some(*class);
        }
    }
    if joined.contains("motdepasse") {
        return Some(Class::Password);
    }
    for (weak, class) in WEAK {
        if has(weak) {
            return Some(*class);
        }
    }
    if last == "key" || last == "keys" {
        let ordinary = words.len() > 1 && ORDINARY_KEYS.contains(&words[words.len() - 2].as_str());
        if !ordinary {
            return Some(Class::Secret);
        }
    }
    if HASHES.contains(&last.as_str()) {
        return None;
    }
    // A provider's name of seven letters or more counts anywhere in a name (`xDatadogKey`); one
    // of four to six letters where a word starts or ends (`herokuKey`, `myheroku`), and inside
    // a word (`camerakit` holds `meraki`) only as weaker evidence; a shorter one (`aws`, `lob`)
    // only where a word starts.
    let mut bounds = Vec::with_capacity(words.len() + 1);
    let mut at = 0;
    for w in words {
        bounds.push(at);
        at += w.len();
    }
    bounds.push(at);
    let starts = &bounds[..bounds.len() - 1];
    let mut inside = false;
    for m in providers().find_overlapping_iter(joined.as_str()) {
        // Across words only to a word's end (`new_relic`, `xnew_relic`), not `sumOfX`.
        let across = bounds.iter().any(|&b| m.start() < b && b < m.end());
        if across && !bounds.contains(&m.end()) {
            continue;
        }
        if m.len() >= 7
            || starts.contains(&m.start())
            || (m.len() >= 4 && bounds[1..].contains(&m.end()))
        {
            return Some(Class::Provider);
        }
        inside |= m.len() >= 4;
    }
    if inside {
        return Some(Class::ProviderInWord);
    }
    None
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn word_splitting() {
        assert_eq!(words("privateKey"), ["private", "key"]);
        assert_eq!(words("APIKey"), ["api", "key"]);
        assert_eq!(words("X-Auth-Token"), ["x", "auth", "token"]);
        assert_eq!(words("api%5Fkey"), ["api", "key"]);
        assert_eq!(
            words("Ocp-Apim-Subscription-Key"),
            ["ocp", "apim", "subscription", "key"]
        );
        assert_eq!(words("mot de passe"), ["mot", "de", "passe"]);
        assert_eq!(words("Contraseña"), ["contraseña"]);
    }

    #[test]
    fn secret_names() {
        let extra = vec!["ssn".to_string()];
        for k in [
            "Authorization",
            "PROXY-AUTHORIZATION",
            "cookie",
            "Set-Cookie",
            "X-Api-Key",
            "access_token",
            "accesstoken",
            "refreshToken",
            "client_secret",
            "Password",
            "db_passwd",
            "stripe-api-key",
            "APIKEY",
            "private_key_pem",
            "privateKey",
            "x-csrf-token",
            "customer_ssn",
            "pwd",
            "pass",
            "pw",
            "passwd",
            "Passwort",
            "mot_de_passe",
            "contraseña",
            "otp",
            "cvv",
            "card_number",
            "cardNumber",
            "X-Auth-Key",
            "Ocp-Apim-Subscription-Key",
            "sig",
            "key",
            "api%5Fkey",
            "signing_secret",
            "AWS_SECRET_ACCESS_KEY",
            "HEROKU_API",
            "sessionid",
            "PHPSESSID",
            "JSESSIONID",
            "connect.sid",
            "session_id",
        ] {
            assert!(classify(k, &extra).is_some(), "{k}");
        }
        for k in [
            "content-type",
            "user",
            "id",
            "tokenizer",
            "status",
            "token_type",
            "key_id",
            "public_key",
            "publishableKey",
            "idempotency_key",
            "Idempotency-Key",
            "prompt_tokens",
            "max_tokens",
            "password_changed_at",
            "expires_in",
            "secretary",
            "passport",
            "monkey",
            "keyboard",
            "compass",
            "email",
            "traceparent",
            "etag",
            "sumOfExposures",
            "rookTable",
            "ReactNativeCamera",
            "TokenFile",
            "passwordVariable",
            "auth_source",
            "image_sha256",
            "schemaKey",
            "global_ref",
        ] {
            assert_eq!(classify(k, &extra), None, "{k}");
        }
        // A provider's name inside a word is weaker evidence; across words only to a word end.
        assert_eq!(classify("camerakit", &[]), Some(Class::ProviderInWord));
        assert_eq!(classify("x_new_relic", &[]), Some(Class::Provider));
        assert_eq!(classify("myHerokuKey", &[]), Some(Class::Secret));
        assert_eq!(classify("myHeroku", &[]), Some(Class::Provider));
        assert_eq!(classify("Cookie", &[]), Some(Class::Header));
        assert_eq!(classify("otp", &[]), Some(Class::Password));
        assert_eq!(classify("cvv", &[]), Some(Class::Card));
        assert_eq!(classify("datadog_app", &[]), Some(Class::Provider));
    }
}
