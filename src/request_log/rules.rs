//! The token formats of the common providers, each a rule with an id, written from the formats
//! the providers publish, and measured against samples generated from gitleaks' rule set
//! (`tests/redaction/gitleaks.json`, `pgrx-tests/tests/redaction.rs`).
//!
//! A rule is one regular expression (bytes, ASCII, compiled with `unicode(false)`, so every
//! class is ASCII and the lazy DFA never gives up on non-ASCII input) and the literals one of
//! which every match contains: the literals of all rules make one Aho–Corasick automaton, and a
//! rule's expression runs only on a string where one of its literals is (`scan.rs`).  The group
//! named `s`, when there is one, is what is replaced (the provider's prefix stays, so an operator
//! sees which kind of secret was there: `sk_live_[REDACTED]`); otherwise the whole match is.

/// One provider format.
pub struct Rule {
    /// Stable id: what `explain` reports and what `tenancy.redact_disabled_rules` names.
    pub id: &'static str,
    /// cloud, source, ci, registry, payments, messaging, ai, observability, saas, crypto, generic
    pub category: &'static str,
    /// Lowercase literals, one of which (compared ASCII case-insensitively) every match contains.
    pub literals: &'static [&'static str],
    /// How many bytes before the literal a match may start (0: the match starts with it).
    pub back: usize,
    /// The expression.
    pub pattern: &'static str,
    /// Off unless `tenancy.redact_enabled_rules` names it (personal data rather than secrets).
    pub opt_in: bool,
}

macro_rules! rule {
    ($id:literal, $cat:literal, [$($lit:literal),+], $pat:literal) => {
        Rule { id: $id, category: $cat, literals: &[$($lit),+], back: 0, pattern: $pat, opt_in: false }
    };
    ($id:literal, $cat:literal, [$($lit:literal),+], back $back:literal, $pat:literal) => {
        Rule { id: $id, category: $cat, literals: &[$($lit),+], back: $back, pattern: $pat, opt_in: false }
    };
}

/// Every provider rule.  Order matters only for overlapping matches (the first rule's id is
/// reported for the merged span).
pub const RULES: &[Rule] = &[
    // ---- credentials in structure, whatever the provider -------------------------------------
    rule!(
        "private-key",
        "generic",
        ["-----begin"],
        r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----(?P<s>[\s\S]*?)(?:-----END[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----|\z)"
    ),
    rule!(
        "putty-private-key",
        "generic",
        ["putty-user-key-file"],
        r"PuTTY-User-Key-File-\d:(?P<s>[\s\S]*?)(?:Private-MAC: ?[0-9a-fA-F]+|\z)"
    ),
    rule!("url-password", "generic", ["://"], back 32,
        r"(?i:\b[a-z][a-z0-9+.-]{0,30})://[^\s:/?#@\x22'<>\[\]\\]*:(?P<s>[^\s/?#@\x22'<>\\]+)@"),
    rule!(
        "connection-string-password",
        "generic",
        ["password=", "pwd="],
        r"(?i:\b(?:password|pwd))=(?P<s>[^;&\s\x22']{1,512})"
    ),
    rule!(
        "azure-storage-account-key",
        "cloud",
        ["accountkey="],
        r"(?i:AccountKey)=(?P<s>[A-Za-z0-9+/]{40,}={0,2})"
    ),
    rule!(
        "azure-shared-access-key",
        "cloud",
        ["sharedaccesskey=", "sharedaccesssignature="],
        r"(?i:SharedAccess(?:Key|Signature))=(?P<s>[A-Za-z0-9+/%=&:.-]{20,})"
    ),
    rule!(
        "curl-user",
        "generic",
        ["curl"],
        r"\bcurl\b[^\r\n]{0,200}?\s(?:-u|--user)[ =]{1,3}[\x22']?[^:\s\x22']{1,64}:(?P<s>[^\s\x22']{1,256})"
    ),
    rule!(
        "nuget-config-password",
        "registry",
        ["<add key="],
        r#"(?i:<add key=\\?"(?:ClearText)?Password\\?"\s*value=\\?")(?P<s>[^"\\]{1,512})"#
    ),
    rule!(
        "kubernetes-secret-data",
        "cloud",
        ["kind"],
        r"(?i:\bkind:[ \t]*[\x22']?secret\b[\x22']?)(?P<s>[\s\S]{0,400}?\bdata:[\s\S]{0,400})"
    ),
    // ---- cloud -------------------------------------------------------------------------------
    rule!(
        "aws-access-key-id",
        "cloud",
        ["akia", "asia", "abia", "acca", "a3t"],
        r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b"
    ),
    rule!(
        "aws-session-token",
        "cloud",
        ["fwogzxivyxdz", "iqojb3jpz2lux2vj"],
        r"\b(?:FwoGZXIvYXdz|IQoJb3JpZ2luX2Vj)[A-Za-z0-9/+=]{40,}"
    ),
    rule!(
        "aws-bedrock-api-key",
        "cloud",
        ["absk", "bedrock-api-key-"],
        r"\b(?:ABSK[A-Za-z0-9+/]{100,}={0,2}|bedrock-api-key-[A-Za-z0-9+/=%-]{20,})"
    ),
    rule!("gcp-api-key", "cloud", ["aiza"], r"\bAIza[0-9A-Za-z_-]{35}"),
    rule!(
        "gcp-oauth-client-secret",
        "cloud",
        ["gocspx-"],
        r"\bGOCSPX-[0-9A-Za-z_-]{28,}"
    ),
    rule!(
        "google-oauth-access-token",
        "cloud",
        ["ya29."],
        r"\bya29\.[0-9A-Za-z_-]{20,}"
    ),
    rule!(
        "google-oauth-refresh-token",
        "cloud",
        ["1//0"],
        r"\b1//0[0-9A-Za-z_-]{40,}"
    ),
    rule!("azure-ad-client-secret", "cloud", ["q~"], back 4,
        r"\b[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}"),
    rule!(
        "alibaba-access-key-id",
        "cloud",
        ["ltai"],
        r"\bLTAI[A-Za-z0-9]{12,20}\b"
    ),
    rule!(
        "digitalocean-token",
        "cloud",
        ["dop_v1_", "doo_v1_", "dor_v1_"],
        r"(?i:\bdo[opr]_v1_)(?P<s>[a-f0-9]{64})"
    ),
    rule!(
        "heroku-api-key-v2",
        "cloud",
        ["hrku-aa"],
        r"\bHRKU-AA(?P<s>[0-9A-Za-z_-]{58,})"
    ),
    rule!(
        "cloudflare-origin-ca-key",
        "cloud",
        ["v1.0-"],
        r"\bv1\.0-[a-f0-9]{24}-[a-f0-9]{146}"
    ),
    rule!(
        "yandex-api-key",
        "cloud",
        ["aqvn"],
        r"\bAQVN[A-Za-z0-9_-]{35,38}"
    ),
    rule!(
        "yandex-iam-token",
        "cloud",
        ["t1."],
        r"\bt1\.[A-Za-z0-9_-]+={0,2}\.[A-Za-z0-9_-]{86}={0,2}"
    ),
    rule!(
        "scaleway-access-key",
        "cloud",
        ["scw"],
        r"\bSCW[A-Z0-9]{17}\b"
    ),
    rule!(
        "flyio-token",
        "cloud",
        ["fo1_", "fm1", "fm2_"],
        r"\b(?:fo1_[\w-]{43}|fm1[ar]_[A-Za-z0-9+/]{100,}={0,3}|fm2_[A-Za-z0-9+/]{100,}={0,3})"
    ),
    rule!(
        "netlify-token",
        "cloud",
        ["nfp_"],
        r"\bnfp_(?P<s>[A-Za-z0-9]{36,})"
    ),
    rule!(
        "supabase-pat",
        "cloud",
        ["sbp_"],
        r"\bsbp_(?P<s>[a-f0-9]{40})"
    ),
    rule!(
        "supabase-secret-key",
        "cloud",
        ["sb_secret_"],
        r"\bsb_secret_(?P<s>[A-Za-z0-9_-]{20,})"
    ),
    rule!(
        "vault-service-token",
        "cloud",
        ["hvs.", "hvb.", "hvr."],
        r"\bhv[sbr]\.(?P<s>[\w-]{90,})"
    ),
    rule!("vault-legacy-token", "cloud", ["s."], back 1, r"(?:^|[\s\x22'=:])s\.(?P<s>[A-Za-z0-9]{24})\b"),
    rule!("terraform-cloud-token", "cloud", ["atlasv1"], back 15,
        r"(?i:\b[a-z0-9]{14})\.atlasv1\.(?P<s>[A-Za-z0-9_=-]{60,})"),
    rule!(
        "pulumi-token",
        "cloud",
        ["pul-"],
        r"\bpul-(?P<s>[a-f0-9]{40})"
    ),
    rule!(
        "doppler-token",
        "cloud",
        [
            "dp.pt.",
            "dp.st.",
            "dp.sa.",
            "dp.ct.",
            "dp.scim.",
            "dp.audit."
        ],
        r"\bdp\.(?:pt|st|sa|ct|scim|audit)\.(?P<s>[A-Za-z0-9]{40,})"
    ),
    rule!(
        "onepassword-service-account-token",
        "cloud",
        ["ops_"],
        r"\bops_(?P<s>eyJ[A-Za-z0-9+/]{100,}={0,3})"
    ),
    rule!(
        "onepassword-secret-key",
        "cloud",
        ["a3-"],
        r"\bA3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}\b"
    ),
    rule!(
        "age-secret-key",
        "crypto",
        ["age-secret-key-1"],
        r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}"
    ),
    rule!(
        "databricks-token",
        "cloud",
        ["dapi"],
        r"\bdapi(?P<s>[a-f0-9]{32}(?:-\d)?)"
    ),
    rule!(
        "planetscale-token",
        "cloud",
        ["pscale_tkn_", "pscale_oauth_", "pscale_pw_"],
        r"(?i:\bpscale_(?:tkn|oauth|pw)_)(?P<s>[\w=.-]{32,})"
    ),
    rule!(
        "clickhouse-cloud-key",
        "cloud",
        ["4b1d"],
        r"\b4b1d[A-Za-z0-9]{38}\b"
    ),
    rule!(
        "render-api-key",
        "cloud",
        ["rnd_"],
        r"\brnd_(?P<s>[A-Za-z0-9]{32,})"
    ),
    rule!(
        "openshift-user-token",
        "cloud",
        ["sha256~"],
        r"\bsha256~(?P<s>[\w-]{43})"
    ),
    rule!(
        "github-pat",
        "source",
        ["ghp_"],
        r"\bghp_(?P<s>[A-Za-z0-9]{36,})"
    ),
    rule!(
        "github-oauth",
        "source",
        ["gho_"],
        r"\bgho_(?P<s>[A-Za-z0-9]{36,})"
    ),
    rule!(
        "github-app-token",
        "source",
        ["ghu_", "ghs_"],
        r"\bgh[us]_(?P<s>[A-Za-z0-9]{36,})"
    ),
    rule!(
        "github-refresh-token",
        "source",
        ["ghr_"],
        r"\bghr_(?P<s>[A-Za-z0-9]{36,})"
    ),
    rule!(
        "github-fine-grained-pat",
        "source",
        ["github_pat_"],
        r"\bgithub_pat_(?P<s>\w{82,})"
    ),
    rule!(
        "gitlab-pat",
        "source",
        ["glpat-"],
        r"\bglpat-(?P<s>[\w.-]{20,})"
    ),
    rule!(
        "gitlab-token",
        "source",
        [
            "gloas-", "gldt-", "glrt-", "glcbt-", "glptt-", "glft-", "glimt-", "glagent-",
            "glsoat-", "glffct-"
        ],
        r"\bgl(?:oas|dt|rt|cbt|ptt|ft|imt|agent|soat|ffct)-(?P<s>[\w.-]{20,})"
    ),
    rule!(
        "gitlab-runner-registration-token",
        "source",
        ["gr1348941"],
        r"\bGR1348941(?P<s>[\w-]{20,})"
    ),
    rule!(
        "gitlab-session-cookie",
        "source",
        ["_gitlab_session="],
        r"_gitlab_session=(?P<s>[0-9a-z]{32})"
    ),
    rule!(
        "bitbucket-app-password",
        "source",
        ["atbb"],
        r"\bATBB(?P<s>[A-Za-z0-9_=.-]{28,})"
    ),
    rule!(
        "atlassian-api-token",
        "source",
        ["atatt3", "atctt3"],
        r"\bAT[AC]TT3(?P<s>[A-Za-z0-9_=-]{100,})"
    ),
    rule!(
        "circleci-token",
        "ci",
        ["ccipat_"],
        r"\bCCIPAT_(?P<s>[A-Za-z0-9]{22}_[a-f0-9]{40})"
    ),
    rule!(
        "buildkite-token",
        "ci",
        ["bkua_"],
        r"\bbkua_(?P<s>[a-f0-9]{40})"
    ),
    rule!(
        "sourcegraph-token",
        "source",
        ["sgp_"],
        r"\bsgp_(?P<s>(?:[a-fA-F0-9]{16}|local)_[a-fA-F0-9]{40}|[a-fA-F0-9]{40})"
    ),
    rule!(
        "harness-token",
        "ci",
        ["pat.", "sat."],
        r"\b(?:pat|sat)\.(?P<s>[A-Za-z0-9_-]{22}\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{20})"
    ),
    rule!(
        "octopus-deploy-key",
        "ci",
        ["api-"],
        r"\bAPI-[A-Z0-9]{26}\b"
    ),
    rule!(
        "jfrog-api-key",
        "registry",
        ["akcp"],
        r"\bAKCp(?P<s>[A-Za-z0-9]{69})"
    ),
    rule!(
        "jfrog-reference-token",
        "registry",
        ["cmvmd"],
        r"\bcmVmd[A-Za-z0-9]{59}\b"
    ),
    rule!(
        "sonar-token",
        "ci",
        ["squ_", "sqp_", "sqa_"],
        r"\bsq[upa]_(?P<s>[a-f0-9]{40})"
    ),
    rule!("travis-token", "ci", ["travis"], back 60,
        r"(?i:travis)[\w .-]{0,30}[:=]\s*[\x22']?(?P<s>[A-Za-z0-9]{22})\b"),
    rule!("drone-token", "ci", ["drone"], back 60,
        r"(?i:drone)[\w .-]{0,30}[:=]\s*[\x22']?(?P<s>[A-Za-z0-9]{32})\b"),
    rule!("codecov-token", "ci", ["codecov"], back 60,
        r"(?i:codecov)[\w .-]{0,30}[:=]\s*[\x22']?(?P<s>[A-Za-z0-9-]{32,36})\b"),
    // ---- package registries ------------------------------------------------------------------
    rule!(
        "npm-token",
        "registry",
        ["npm_"],
        r"\bnpm_(?P<s>[A-Za-z0-9]{36,})"
    ),
    rule!(
        "npmrc-auth-token",
        "registry",
        ["_authtoken="],
        r"(?i:_authToken)=(?P<s>[^\s\x22']{8,})"
    ),
    rule!(
        "pypi-token",
        "registry",
        ["pypi-ageichlwas5vcmc", "pypi-agendgvzdc5wexbplm9yzw"],
        r"\bpypi-(?P<s>AgE(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw)[\w-]{50,})"
    ),
    rule!(
        "rubygems-token",
        "registry",
        ["rubygems_"],
        r"\brubygems_(?P<s>[a-f0-9]{48})"
    ),
    rule!("nuget-api-key", "registry", ["oy2"], r"\boy2[a-z0-9]{43}\b"),
    rule!(
        "clojars-token",
        "registry",
        ["clojars_"],
        r"(?i:\bCLOJARS_)(?P<s>[A-Za-z0-9]{60})"
    ),
    rule!(
        "docker-hub-token",
        "registry",
        ["dckr_pat_", "dckr_oat_"],
        r"\bdckr_(?:pat|oat)_(?P<s>[A-Za-z0-9_-]{27,})"
    ),
    rule!(
        "crates-io-token",
        "registry",
        ["cio"],
        r"\bcio(?P<s>[A-Za-z0-9]{32})\b"
    ),
    rule!(
        "hex-pm-key",
        "registry",
        ["hexpm_"],
        r"\bhexpm_(?P<s>[A-Za-z0-9]{32,})"
    ),
    // ---- payments ----------------------------------------------------------------------------
    rule!(
        "stripe-secret-key",
        "payments",
        ["sk_live", "sk_test", "sk_prod", "rk_live", "rk_test", "rk_prod"],
        r"\b[sr]k_(?:live|test|prod)_(?P<s>[A-Za-z0-9]{10,})"
    ),
    rule!(
        "stripe-webhook-secret",
        "payments",
        ["whsec_"],
        r"\bwhsec_(?P<s>[A-Za-z0-9+/=]{24,})"
    ),
    rule!(
        "square-token",
        "payments",
        ["sq0atp-", "sq0csp-", "eaaa"],
        r"\b(?:sq0atp-(?P<s>[\w-]{22,})|sq0csp-[\w-]{40,}|EAAA[\w-]{22,})"
    ),
    rule!(
        "braintree-access-token",
        "payments",
        ["access_token$"],
        r"access_token\$(?:production|sandbox)\$(?P<s>[0-9a-z]{16}\$[0-9a-f]{32})"
    ),
    rule!(
        "flutterwave-key",
        "payments",
        ["flwseck", "flwpubk"],
        r"\bFLW(?:SECK|PUBK)(?:_TEST)?-(?P<s>[a-hA-H0-9]{12,32}(?:-X)?)"
    ),
    rule!(
        "plaid-access-token",
        "payments",
        [
            "access-sandbox-",
            "access-development-",
            "access-production-"
        ],
        r"\baccess-(?:sandbox|development|production)-(?P<s>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
    ),
    rule!(
        "shopify-token",
        "payments",
        ["shpat_", "shpca_", "shppa_", "shpss_"],
        r"\bshp(?:at|ca|pa|ss)_(?P<s>[a-fA-F0-9]{32})"
    ),
    rule!(
        "duffel-token",
        "payments",
        ["duffel_"],
        r"\bduffel_(?:test|live)_(?P<s>[A-Za-z0-9_=-]{43})"
    ),
    rule!(
        "easypost-key",
        "payments",
        ["ezak", "eztk"],
        r"\bEZ[AT]K(?P<s>[A-Za-z0-9]{54})"
    ),
    rule!(
        "shippo-token",
        "payments",
        ["shippo_"],
        r"\bshippo_(?:live|test)_(?P<s>[a-fA-F0-9]{40})"
    ),
    rule!("gocardless-token", "payments", ["gocardless"], back 60,
        r"(?i:gocardless)[\w .-]{0,30}[:=]\s*[\x22']?(?:live|sandbox)_(?P<s>[A-Za-z0-9_=-]{40})"),
    rule!("coinbase-token", "crypto", ["coinbase"], back 60,
        r"(?i:coinbase)[\w .-]{0,30}[:=]\s*[\x22']?(?P<s>[A-Za-z0-9_-]{64})"),
    rule!(
        "lob-key",
        "saas",
        ["live_", "test_"],
        r"\b(?:live|test)_(?:pub_)?(?P<s>[a-f0-9]{31,35})\b"
    ),
    rule!("razorpay-secret", "payments", ["razorpay"], back 60,
        r"(?i:razorpay)[\w .-]{0,30}secret[\w .-]{0,10}[:=]\s*[\x22']?(?P<s>[A-Za-z0-9]{24})"),
    // ---- messaging and mail ------------------------------------------------------------------
    rule!(
        "slack-bot-token",
        "messaging",
        ["xoxb-"],
        r"\bxoxb-(?P<s>[0-9A-Za-z-]{20,})"
    ),
    rule!(
        "slack-user-token",
        "messaging",
        ["xoxp-", "xoxe-"],
        r"\bxox[pe]-(?P<s>[0-9]{10,13}-[0-9A-Za-z-]{20,}|[0-9A-Za-z-]{20,})"
    ),
    rule!(
        "slack-app-token",
        "messaging",
        ["xapp-"],
        r"(?i:\bxapp-)(?P<s>\d-[A-Z0-9]+-\d+-[a-z0-9]+)"
    ),
    rule!(
        "slack-config-token",
        "messaging",
        ["xoxe.xox", "xoxe-"],
        r"(?i:\bxoxe(?:\.xox[bp])?-)(?P<s>\d-[A-Z0-9]{100,})"
    ),
    rule!(
        "slack-legacy-token",
        "messaging",
        ["xoxa-", "xoxr-", "xoxo-", "xoxs-"],
        r"\bxox[aros]-(?P<s>[0-9A-Za-z-]{8,})"
    ),
    rule!(
        "slack-webhook-url",
        "messaging",
        ["hooks.slack.com"],
        r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<s>[A-Za-z0-9+/]{20,})"
    ),
    rule!(
        "twilio-api-key",
        "messaging",
        ["sk"],
        r"\bSK(?P<s>[0-9a-fA-F]{32})\b"
    ),
    rule!(
        "sendgrid-api-key",
        "messaging",
        ["sg."],
        r"\bSG\.(?P<s>[A-Za-z0-9_=.-]{60,})"
    ),
    rule!(
        "sendinblue-api-key",
        "messaging",
        ["xkeysib-", "xsmtpsib-"],
        r"\bx(?:keysib|smtpsib)-(?P<s>[a-f0-9]{64}-[A-Za-z0-9]{16})"
    ),
    rule!(
        "mailgun-api-key",
        "messaging",
        ["key-"],
        r"\bkey-(?P<s>[a-f0-9]{32})\b"
    ),
    rule!("mailgun-signing-key", "messaging", ["mailgun"], back 60,
        r"(?i:mailgun)[\w .-]{0,30}[:=]\s*[\x22']?(?P<s>[a-h0-9]{32}-[a-h0-9]{8}-[a-h0-9]{8})"),
    rule!("mailchimp-api-key", "messaging", ["-us"], back 33, r"\b[a-f0-9]{32}-us\d{1,2}\b"),
    rule!("telegram-bot-token", "messaging", [":a"], back 17, r"\b\d{5,16}:A(?P<s>[A-Za-z0-9_-]{34})\b"),
    rule!("discord-bot-token", "messaging", ["discord"], back 60,
        r"(?i:discord)[\w .-]{0,30}[:=]\s*[\x22']?(?P<s>[MNO][A-Za-z0-9_-]{23,25}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,38})"),
    rule!(
        "discord-webhook-url",
        "messaging",
        ["discord.com/api/webhooks/", "discordapp.com/api/webhooks/"],
        r"discord(?:app)?\.com/api/webhooks/\d+/(?P<s>[A-Za-z0-9_-]{60,})"
    ),
    rule!(
        "teams-webhook-url",
        "messaging",
        ["webhook.office.com"],
        r"\.webhook\.office\.com/webhookb2/(?P<s>[A-Za-z0-9@/-]{60,})"
    ),
    rule!("messagebird-key", "messaging", ["messagebird", "message_bird", "message-bird"], back 60,
        r"(?i:message[_-]?bird)[\w .-]{0,30}[:=]\s*[\x22']?(?P<s>[A-Za-z0-9]{25})\b"),
    rule!("mattermost-token", "messaging", ["mattermost"], back 60,
        r"(?i:mattermost)[\w .-]{0,30}[:=]\s*[\x22']?(?P<s>[A-Za-z0-9]{26})\b"),
    rule!("postmark-token", "messaging", ["postmark"], back 60,
        r"(?i:postmark)[\w .-]{0,30}[:=]\s*[\x22']?(?P<s>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"),
    rule!("pusher-secret", "messaging", ["pusher"], back 60,
        r"(?i:pusher)[\w .-]{0,30}secret[\w .-]{0,10}[:=]\s*[\x22']?(?P<s>[a-f0-9]{20})"),
    // ---- AI ----------------------------------------------------------------------------------
    rule!("openai-api-key", "ai", ["t3blbkfj"], back 200,
        r"\bsk-(?:(?:proj|svcacct|admin|None)-)?(?P<s>[A-Za-z0-9_-]{20,}T3BlbkFJ[A-Za-z0-9_-]{20,})"),
    rule!(
        "openai-project-key",
        "ai",
        ["sk-proj-", "sk-svcacct-", "sk-admin-", "sk-none-"],
        r"\bsk-(?:proj|svcacct|admin|None)-(?P<s>[A-Za-z0-9_-]{20,})"
    ),
    rule!(
        "anthropic-api-key",
        "ai",
        ["sk-ant-"],
        r"\bsk-ant-(?:api|admin|sid)\d{2}-(?P<s>[A-Za-z0-9_-]{80,})"
    ),
    rule!(
        "openrouter-api-key",
        "ai",
        ["sk-or-v1-"],
        r"\bsk-or-v1-(?P<s>[a-f0-9]{64})"
    ),
    rule!(
        "huggingface-token",
        "ai",
        ["hf_", "api_org_"],
        r"\b(?:hf|api_org)_(?P<s>[A-Za-z]{34})\b"
    ),
    rule!(
        "perplexity-api-key",
        "ai",
        ["pplx-"],
        r"\bpplx-(?P<s>[A-Za-z0-9]{48})"
    ),
    rule!(
        "groq-api-key",
        "ai",
        ["gsk_"],
        r"\bgsk_(?P<s>[A-Za-z0-9]{52})"
    ),
    rule!(
        "replicate-token",
        "ai",
        ["r8_"],
        r"\br8_(?P<s>[A-Za-z0-9]{37})"
    ),
    rule!(
        "xai-api-key",
        "ai",
        ["xai-"],
        r"\bxai-(?P<s>[A-Za-z0-9]{80})"
    ),
    rule!(
        "langsmith-api-key",
        "ai",
        ["lsv2_"],
        r"\blsv2_(?:pt|sk)_(?P<s>[a-f0-9]{32}_[a-f0-9]{10})"
    ),
    rule!(
        "pinecone-api-key",
        "ai",
        ["pcsk_"],
        r"\bpcsk_(?P<s>[A-Za-z0-9_]{40,})"
    ),
    rule!(
        "elevenlabs-api-key",
        "ai",
        ["sk_"],
        r"\bsk_(?P<s>[a-f0-9]{48})\b"
    ),
    rule!("cohere-api-key", "ai", ["cohere", "co_api_key"], back 60,
        r"(?i:cohere|co_api_key)[\w .-]{0,30}[:=]\s*[\x22']?(?P<s>[A-Za-z0-9]{40})\b"),
    // ---- observability -----------------------------------------------------------------------
    rule!(
        "dynatrace-token",
        "observability",
        ["dt0c01."],
        r"(?i:\bdt0c01\.)(?P<s>[A-Za-z0-9]{24}\.[A-Za-z0-9]{64})"
    ),
    rule!(
        "grafana-api-key",
        "observability",
        ["eyjrijoi"],
        r"\beyJrIjoi[A-Za-z0-9]{70,}={0,3}"
    ),
    rule!(
        "grafana-cloud-token",
        "observability",
        ["glc_"],
        r"\bglc_(?P<s>[A-Za-z0-9+/]{32,}={0,3})"
    ),
    rule!(
        "grafana-service-account-token",
        "observability",
        ["glsa_"],
        r"\bglsa_(?P<s>[A-Za-z0-9]{32}_[A-Fa-f0-9]{8})"
    ),
    rule!(
        "new-relic-key",
        "observability",
        ["nrak-", "nrii-", "nrjs-", "nraa-"],
        r"(?i:\bNR(?:AK|II|JS|AA)-)(?P<s>[A-Za-z0-9-]{19,32})"
    ),
    rule!(
        "sentry-token",
        "observability",
        ["sntrys_", "sntryu_"],
        r"\bsntry[su]_(?P<s>[A-Za-z0-9+/=_]{60,})"
    ),
    rule!("datadog-key", "observability", ["datadog", "dd_api_key", "dd_app_key", "dd-api-key", "dd-application-key"], back 60,
        r"(?i:datadog|dd[_-]api[_-]key|dd[_-]app(?:lication)?[_-]key)[\w .-]{0,30}[:=]\s*[\x22']?(?P<s>[a-f0-9]{32}|[a-f0-9]{40})\b"),
    rule!("rollbar-token", "observability", ["rollbar"], back 60,
        r"(?i:rollbar)[\w .-]{0,30}[:=]\s*[\x22']?(?P<s>[a-f0-9]{32})\b"),
    rule!("honeycomb-key", "observability", ["honeycomb"], back 60,
        r"(?i:honeycomb)[\w .-]{0,30}[:=]\s*[\x22']?(?P<s>[A-Za-z0-9]{22,64})\b"),
    rule!("sumologic-access-id", "observability", ["sumo"], back 60,
        r"(?:sumo|Sumo|SUMO)[\w .-]{0,30}[:=]\s*[\x22']?(?P<s>su[A-Za-z0-9]{12}|[A-Za-z0-9]{64})\b"),
    // ---- SaaS --------------------------------------------------------------------------------
    rule!(
        "linear-api-key",
        "saas",
        ["lin_api_", "lin_oauth_"],
        r"\blin_(?:api|oauth)_(?P<s>[A-Za-z0-9]{40,64})"
    ),
    rule!(
        "notion-token",
        "saas",
        ["ntn_", "secret_"],
        r"\b(?:ntn_(?P<s>[0-9]{11}[A-Za-z0-9]{35})|secret_[A-Za-z0-9]{43})\b"
    ),
    rule!(
        "airtable-pat",
        "saas",
        ["pat"],
        r"\bpat[A-Za-z0-9]{14}\.(?P<s>[a-f0-9]{64})"
    ),
    rule!("asana-pat", "saas", ["1/", "2/"], back 1, r"\b[12]/\d{16}:(?P<s>[0-9a-f]{32})"),
    rule!(
        "typeform-token",
        "saas",
        ["tfp_"],
        r"\btfp_(?P<s>[A-Za-z0-9_.=-]{59})"
    ),
    rule!(
        "figma-token",
        "saas",
        ["figd_"],
        r"\bfigd_(?P<s>[A-Za-z0-9_-]{40,})"
    ),
    rule!(
        "contentful-pat",
        "saas",
        ["cfpat-"],
        r"\bCFPAT-(?P<s>[A-Za-z0-9_-]{43})"
    ),
    rule!(
        "adobe-client-secret",
        "saas",
        ["p8e-"],
        r"\bp8e-(?P<s>[A-Za-z0-9]{32})"
    ),
    rule!(
        "postman-api-key",
        "saas",
        ["pmak-"],
        r"(?i:\bPMAK-)(?P<s>[a-f0-9]{24}-[a-f0-9]{34})"
    ),
    rule!(
        "prefect-api-key",
        "saas",
        ["pnu_"],
        r"\bpnu_(?P<s>[A-Za-z0-9]{36})"
    ),
    rule!(
        "infracost-api-key",
        "saas",
        ["ico-"],
        back 1,
        r"(?:^|[^.\w])ico-(?P<s>[A-Za-z0-9]{32})"
    ),
    rule!(
        "frameio-token",
        "saas",
        ["fio-u-"],
        r"\bfio-u-(?P<s>[A-Za-z0-9_=-]{64})"
    ),
    rule!(
        "readme-api-key",
        "saas",
        ["rdme_"],
        r"\brdme_(?P<s>[a-z0-9]{70})"
    ),
    rule!(
        "mapbox-secret-token",
        "saas",
        ["sk.eyj"],
        r"\bsk\.(?P<s>eyJ[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,})"
    ),
    rule!(
        "dropbox-token",
        "saas",
        ["sl.", "dropbox"],
        r"\bsl\.(?P<s>[A-Za-z0-9_=-]{130,})|(?i:dropbox)[\w .-]{0,30}[:=]\s*[\x22']?(?P<l>[A-Za-z0-9]{11}AAAAAAAAAA[A-Za-z0-9_=-]{43})"
    ),
    rule!(
        "facebook-page-token",
        "saas",
        ["eaam", "eaac"],
        r"\bEAA[MC][A-Za-z0-9]{100,}"
    ),
    rule!("facebook-access-token", "saas", ["|", "%"], back 17, r"\b\d{15,16}(?:\||%7[cC]|%)(?P<s>[0-9A-Za-z_-]{27,40})"),
    rule!(
        "twitter-bearer-token",
        "saas",
        ["aaaaaaaaaaaaaaaaaaaaaa"],
        r"\bA{22}[A-Za-z0-9%]{80,}"
    ),
    rule!("maxmind-license-key", "saas", ["_mmk"], back 37, r"\b[A-Za-z0-9]{6}_(?P<s>[A-Za-z0-9]{29})_mmk\b"),
    rule!(
        "settlemint-token",
        "saas",
        ["sm_aat_", "sm_pat_", "sm_sat_"],
        r"\bsm_(?:aat|pat|sat)_(?P<s>[A-Za-z0-9]{16})"
    ),
    rule!(
        "scalingo-token",
        "saas",
        ["tk-us-"],
        r"\btk-us-(?P<s>[\w-]{48})"
    ),
    rule!("authress-key", "saas", ["acc_", "acc-"], back 50,
        r"\b(?:sc|ext|scauth|authress)_[A-Za-z0-9]{5,30}\.[a-z0-9]{4,6}\.acc[_-](?P<s>[a-z0-9-]{10,32}\.[a-z0-9+/_=-]{30,120})"),
    rule!(
        "intra42-client-secret",
        "saas",
        ["s-s4t2ud-", "s-s4t2af-"],
        r"\bs-s4t2(?:ud|af)-(?P<s>[a-f0-9]{64})"
    ),
    rule!("okta-token", "saas", ["okta"], back 60,
        r"(?:okta|Okta|OKTA)[\w .-]{0,30}[:=]\s*[\x22']?(?P<s>00[\w=-]{40})"),
    rule!("heroku-api-key", "cloud", ["heroku"], back 60,
        r"(?i:heroku)[\w .-]{0,30}[:=]\s*[\x22']?(?P<s>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"),
    rule!(
        "hubspot-api-key",
        "saas",
        ["hubspot", "pat-na1-", "pat-eu1-"],
        r"\bpat-(?:na|eu)1-(?P<s>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})|(?i:hubspot)[\w .-]{0,30}[:=]\s*[\x22']?(?P<l>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
    ),
    rule!(
        "sidekiq-secret",
        "registry",
        ["contribsys"],
        r"(?i:https?://)(?P<s>[a-f0-9]{8}:[a-f0-9]{8})@(?:gems|enterprise)\.contribsys\.com"
    ),
    rule!(
        "sidekiq-env-secret",
        "registry",
        ["contribsys__com"],
        back 20,
        r"(?i:BUNDLE_(?:ENTERPRISE|GEMS)__CONTRIBSYS__COM)[^\n]{0,40}?(?P<s>[a-fA-F0-9]{8}:[a-fA-F0-9]{8})"
    ),
    rule!("snyk-token", "ci", ["snyk"], back 60,
        r"(?i:snyk)[\w .-]{0,30}[:=]\s*[\x22']?(?P<s>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"),
    rule!(
        "launchdarkly-key",
        "saas",
        ["api-", "sdk-", "mob-"],
        r"\b(?:api|sdk|mob)-(?P<s>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b"
    ),
    rule!("algolia-admin-key", "saas", ["algolia"], back 60,
        r"(?i:algolia)[\w .-]{0,30}[:=]\s*[\x22']?(?P<s>[a-z0-9]{32})\b"),
    rule!(
        "jwt-base64",
        "generic",
        ["zxlk"],
        r"\bZXlK[A-Za-z0-9+/]{40,}={0,2}"
    ),
];

/// The opt-in personal-data rules (procedural, `scan.rs`): off unless
/// `tenancy.redact_enabled_rules` names them.
pub const OPT_IN: &[(&str, &str)] = &[(
    "pii-card-number",
    "payment card numbers (Luhn-valid, 13-19 digits)",
)];

/// The procedural rules of `redact.rs` and `scan.rs` (not regular expressions), with their
/// categories.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("auth-scheme", "generic"),
    ("pg-tenancy-api-key", "generic"),
    ("jwt", "generic"),
];
