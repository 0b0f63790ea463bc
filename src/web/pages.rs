//! Server-rendered pages (askama) and their texts, German first, English by
//! Accept-Language. Patient text is always escaped by the templates.

use askama::Template;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

pub struct Texts {
    pub lang: &'static str,
    /// The other language: its code and name, for the switch.
    pub other_lang: &'static str,
    pub other_lang_name: &'static str,
    pub access_title: &'static str,
    pub access_intro: &'static str,
    pub code_label: &'static str,
    pub password_label: &'static str,
    pub open_button: &'static str,
    pub denied: &'static str,
    pub session_ended: &'static str,
    pub privacy_note: &'static str,
    pub viewer_title: &'static str,
    pub logout: &'static str,
    pub access_until: &'static str,
    pub series: &'static str,
    pub image: &'static str,
    pub images: &'static str,
    pub not_diagnostic: &'static str,
    pub idle_warning: &'static str,
    pub seconds: &'static str,
    pub idle_stay: &'static str,
    pub download_study: &'static str,
    pub download_image: &'static str,
    pub findings_text: &'static str,
    pub findings_page: &'static str,
    pub download_pdf: &'static str,
    pub downloads_default: &'static str,
    pub allow_download: &'static str,
    pub extend: &'static str,
    pub letter_all: &'static str,
    pub dicom_intro: &'static str,
    pub dicom_ae_title: &'static str,
    pub dicom_calling: &'static str,
    pub error_title: &'static str,
    pub error_quote: &'static str,
    pub back_to_start: &'static str,
    pub login_title: &'static str,
    pub username: &'static str,
    pub next: &'static str,
    pub totp_label: &'static str,
    pub sign_in: &'static str,
    pub change_password_intro: &'static str,
    pub new_password: &'static str,
    pub repeat_password: &'static str,
    pub save: &'static str,
    pub enrol_intro: &'static str,
    pub enrol_manual: &'static str,
    pub qr_label: &'static str,
    pub confirm: &'static str,
    pub login_denied: &'static str,
    pub nav_label: &'static str,
    pub studies: &'static str,
    pub upload: &'static str,
    pub search_label: &'static str,
    pub modality: &'static str,
    pub date_from: &'static str,
    pub date_to: &'static str,
    pub search: &'static str,
    pub results: &'static str,
    pub patient: &'static str,
    pub referrer: &'static str,
    pub birth_date: &'static str,
    pub patient_id: &'static str,
    pub study_date: &'static str,
    pub description: &'static str,
    pub accession: &'static str,
    pub new_access: &'static str,
    pub shown_once: &'static str,
    pub access_grants: &'static str,
    pub audience: &'static str,
    pub state: &'static str,
    pub revoke: &'static str,
    pub access_days: &'static str,
    pub issue_access: &'static str,
    pub series_heading: &'static str,
    pub history: &'static str,
    pub when: &'static str,
    pub who: &'static str,
    pub what: &'static str,
    pub delete_heading: &'static str,
    pub delete_confirm: &'static str,
    pub delete_study: &'static str,
    pub drop_here: &'static str,
    pub choose_files: &'static str,
    pub choose_folder: &'static str,
    pub overall_progress: &'static str,
    pub letter: &'static str,
    pub reissue: &'static str,
    pub users: &'static str,
    pub api_clients_title: &'static str,
    pub settings: &'static str,
    pub terms_title: &'static str,
    pub terms_text: &'static str,
    pub accept: &'static str,
    pub create: &'static str,
    pub name: &'static str,
    pub role: &'static str,
    pub admin_role: &'static str,
    pub staff_role: &'static str,
    pub state_active: &'static str,
    pub state_locked: &'static str,
    pub state_inactive: &'static str,
    pub last_login: &'static str,
    pub save_changes: &'static str,
    pub deactivate: &'static str,
    pub activate: &'static str,
    pub reset_credentials: &'static str,
    pub unlock: &'static str,
    pub admin_warning: &'static str,
    pub expiring_warning: &'static str,
    pub secret_once: &'static str,
    pub client_id: &'static str,
    pub client_secret: &'static str,
    pub expires: &'static str,
    pub last_used: &'static str,
    pub renew: &'static str,
    pub disable: &'static str,
    pub state_disabled: &'static str,
    pub address: &'static str,
    pub default_access_days: &'static str,
    pub findings_delay: &'static str,
    pub max_upload: &'static str,
    pub never: &'static str,
    pub filter_expiring: &'static str,
    pub filter_unopened: &'static str,
    pub previous: &'static str,
    pub findings: &'static str,
    pub released_at: &'static str,
    pub released: &'static str,
    pub pending: &'static str,
    pub release_now: &'static str,
    pub release_default: &'static str,
    pub release_date: &'static str,
    pub attach_findings: &'static str,
    pub filter_unreleased: &'static str,
    pub download: &'static str,
    pub your_findings: &'static str,
    pub access_log: &'static str,
    pub by_you: &'static str,
    pub by_doctor: &'static str,
    pub by_practice: &'static str,
    pub allow_forwarding: &'static str,
    pub referrer_early: &'static str,
    pub forward_title: &'static str,
    pub forward_intro: &'static str,
    pub forward_days: &'static str,
    pub forward_button: &'static str,
    pub forward_done: &'static str,
    pub back_to_images: &'static str,
    pub your_forwards: &'static str,
}

const DE: Texts = Texts {
    lang: "de",
    other_lang: "en",
    other_lang_name: "English",
    access_title: "Ihre Bilder ansehen",
    access_intro: "Geben Sie die Daten aus Ihrem Zugangsbrief ein.",
    code_label: "Zugangscode",
    password_label: "Passwort",
    open_button: "Bilder öffnen",
    denied: "Zugangscode oder Passwort stimmen nicht, oder der Zugang ist beendet.",
    session_ended: "Ihre Sitzung ist beendet. Bitte melden Sie sich erneut an.",
    privacy_note: "Wer Code und Passwort kennt, kann Ihre Bilder sehen. Bewahren Sie den Brief sicher auf. Wenn Sie das Fenster schließen, endet der Zugang.",
    viewer_title: "Ihre Untersuchung",
    logout: "Abmelden",
    access_until: "Zugang bis",
    series: "Serie",
    image: "Bild",
    images: "Bilder",
    not_diagnostic: "Darstellung nicht für die Befundung geeignet.",
    idle_warning: "Weil Sie nichts mehr tun, endet Ihre Sitzung in",
    seconds: "Sekunden.",
    idle_stay: "Weiter ansehen",
    download_study: "Ganze Untersuchung laden (ZIP, wie CD)",
    download_image: "Bild als JPEG",
    findings_text: "Befund als Text",
    findings_page: "Befund, Seite",
    download_pdf: "Original-PDF herunterladen",
    downloads_default: "Neue Zugänge dürfen Bilder und die ganze Untersuchung herunterladen",
    allow_download: "Herunterladen erlaubt",
    extend: "Verlängern bis",
    letter_all: "Ein Brief für alle Zugänge dieses Patienten",
    dicom_intro: "Ihr PACS sendet Studien per DICOM (C-STORE) an diese AE-Bezeichnung; nur die genannten sendenden AE-Bezeichnungen werden angenommen (* = alle).",
    dicom_ae_title: "AE-Bezeichnung der Praxis",
    dicom_calling: "Erlaubte sendende AE-Bezeichnungen",
    error_title: "Das hat nicht geklappt",
    error_quote: "Bitte nennen Sie bei Rückfragen:",
    back_to_start: "Zur Startseite",
    login_title: "Anmeldung für die Praxis",
    username: "Benutzername",
    next: "Weiter",
    totp_label: "Code aus der Authenticator-App (6 Ziffern)",
    sign_in: "Anmelden",
    change_password_intro: "Bitte wählen Sie ein neues Passwort (mindestens 12 Zeichen).",
    new_password: "Neues Passwort",
    repeat_password: "Neues Passwort wiederholen",
    save: "Speichern",
    enrol_intro: "Scannen Sie den QR-Code mit Ihrer Authenticator-App (z. B. FreeOTP, Google Authenticator) und geben Sie den angezeigten Code ein.",
    enrol_manual: "Ohne Kamera: Schlüssel von Hand eingeben:",
    qr_label: "QR-Code für die Authenticator-App",
    confirm: "Bestätigen",
    login_denied: "Anmeldung nicht möglich. Prüfen Sie Ihre Angaben.",
    nav_label: "Praxis",
    studies: "Untersuchungen",
    upload: "Hochladen",
    search_label: "Suche (Name, Patienten-ID, Geburtsdatum, Auftragsnummer)",
    modality: "Modalität",
    date_from: "Datum von",
    date_to: "Datum bis",
    search: "Suchen",
    results: "Treffer",
    patient: "Patient/in",
    referrer: "Zuweiser/in",
    birth_date: "Geburtsdatum",
    patient_id: "Patienten-ID",
    study_date: "Untersuchungsdatum",
    description: "Beschreibung",
    accession: "Auftragsnummer",
    new_access: "Neuer Zugang",
    shown_once: "Diese Angaben werden nur jetzt angezeigt. Geben Sie sie dem Patienten mit.",
    access_grants: "Zugänge",
    audience: "Für",
    state: "Status",
    revoke: "Widerrufen",
    access_days: "Gültig (Tage)",
    issue_access: "Zugang erstellen",
    series_heading: "Serien",
    history: "Zugriffe",
    when: "Wann",
    who: "Wer",
    what: "Was",
    delete_heading: "Löschen",
    delete_confirm: "Ich will diese Untersuchung endgültig löschen.",
    delete_study: "Untersuchung löschen",
    drop_here: "Dateien, Ordner oder ZIP hierher ziehen",
    choose_files: "Dateien wählen",
    choose_folder: "Ordner wählen",
    overall_progress: "Gesamtfortschritt",
    letter: "Zugangsbrief (PDF)",
    reissue: "Neues Passwort",
    users: "Benutzer",
    api_clients_title: "API-Zugänge",
    settings: "Einstellungen",
    terms_title: "Nutzungsbedingungen",
    terms_text: "Sie verarbeiten Gesundheitsdaten. Geben Sie Zugangsdaten nur an die berechtigte Person, melden Sie sich nach der Arbeit ab und melden Sie Verdacht auf Missbrauch sofort. Alle Zugriffe werden protokolliert.",
    accept: "Akzeptieren",
    create: "Anlegen",
    name: "Name",
    role: "Rolle",
    admin_role: "Administrator/in",
    staff_role: "Mitarbeiter/in",
    state_active: "aktiv",
    state_locked: "gesperrt",
    state_inactive: "deaktiviert",
    last_login: "Letzte Anmeldung",
    save_changes: "Ändern",
    deactivate: "Deaktivieren",
    activate: "Aktivieren",
    reset_credentials: "Passwort und TOTP zurücksetzen (neuer Brief)",
    unlock: "Entsperren",
    admin_warning: "Diese Praxis hat weniger als zwei aktive Administrator/innen. Legen Sie eine zweite an, damit niemand ausgesperrt wird.",
    expiring_warning: "API-Zugänge laufen in weniger als 30 Tagen ab:",
    secret_once: "Das Geheimnis wird nur jetzt angezeigt. Speichern Sie es im RIS/PACS.",
    client_id: "Client-ID",
    client_secret: "Client-Geheimnis",
    expires: "Läuft ab",
    last_used: "Zuletzt benutzt",
    renew: "Verlängern",
    disable: "Sperren",
    state_disabled: "gesperrt",
    address: "Adresse (für Briefe)",
    default_access_days: "Standard-Zugangsdauer (Tage)",
    findings_delay: "Befundfreigabe nach (Stunden)",
    max_upload: "Upload-Grenze (MB)",
    never: "nie",
    filter_expiring: "Zugang endet in 5 Tagen",
    filter_unopened: "Nie geöffnet",
    previous: "Zurück",
    findings: "Befunde",
    released_at: "Freigabe",
    released: "freigegeben",
    pending: "wartet",
    release_now: "sofort",
    release_default: "nach der Praxis-Frist",
    release_date: "am Datum:",
    attach_findings: "Befund hochladen (PDF)",
    filter_unreleased: "Befund nicht freigegeben",
    download: "Herunterladen",
    your_findings: "Ihr Befund",
    access_log: "Wer hat Ihre Untersuchung geöffnet?",
    by_you: "Sie (dieser Zugang)",
    by_doctor: "Ihr Arzt / Ihre Ärztin",
    by_practice: "die Praxis",
    allow_forwarding: "Patienten dürfen ihre Bilder an Ärzte weitergeben",
    referrer_early: "Zuweiser sehen Befunde vor der Freigabe an Patienten",
    forward_title: "Mit einer Ärztin / einem Arzt teilen",
    forward_intro: "Sie erhalten einen eigenen Zugangscode und ein Passwort für Ihre Ärztin oder Ihren Arzt. Sie können das jederzeit widerrufen.",
    forward_days: "Gültig (Tage)",
    forward_button: "Zugang erstellen",
    forward_done: "Geben Sie diese Angaben Ihrer Ärztin oder Ihrem Arzt. Sie werden nur jetzt angezeigt.",
    back_to_images: "Zurück zu den Bildern",
    your_forwards: "Von Ihnen geteilt",
};

const EN: Texts = Texts {
    lang: "en",
    other_lang: "de",
    other_lang_name: "Deutsch",
    access_title: "View your images",
    access_intro: "Enter the details from your access letter.",
    code_label: "Access code",
    password_label: "Password",
    open_button: "Open images",
    denied: "Access code or password is not valid, or access has ended.",
    session_ended: "Your session has ended. Please sign in again.",
    privacy_note: "Anyone with the code and password can see your images. Keep the letter safe. Closing the window ends access.",
    viewer_title: "Your examination",
    logout: "Sign out",
    access_until: "Access until",
    series: "Series",
    image: "Image",
    images: "images",
    not_diagnostic: "Not for diagnostic use.",
    idle_warning: "Because nothing happened for a while, your session ends in",
    seconds: "seconds.",
    idle_stay: "Keep viewing",
    download_study: "Download the study (ZIP, like a CD)",
    download_image: "Image as JPEG",
    findings_text: "Findings as text",
    findings_page: "Findings, page",
    download_pdf: "Download the original PDF",
    downloads_default: "New accesses may download images and the whole study",
    allow_download: "Downloads allowed",
    extend: "Extend until",
    letter_all: "One letter for all of this patient's accesses",
    dicom_intro: "Your PACS sends studies over DICOM (C-STORE) to this AE title; only the calling AE titles listed are accepted (* = any).",
    dicom_ae_title: "Practice AE title",
    dicom_calling: "Allowed calling AE titles",
    error_title: "That did not work",
    error_quote: "If you contact us, please quote:",
    back_to_start: "Back to start",
    login_title: "Practice sign-in",
    username: "Username",
    next: "Next",
    totp_label: "Code from your authenticator app (6 digits)",
    sign_in: "Sign in",
    change_password_intro: "Please choose a new password (at least 12 characters).",
    new_password: "New password",
    repeat_password: "Repeat new password",
    save: "Save",
    enrol_intro: "Scan the QR code with your authenticator app (e.g. FreeOTP, Google Authenticator) and enter the code it shows.",
    enrol_manual: "Without a camera, enter the key by hand:",
    qr_label: "QR code for the authenticator app",
    confirm: "Confirm",
    login_denied: "Sign-in failed. Please check your details.",
    nav_label: "Practice",
    studies: "Studies",
    upload: "Upload",
    search_label: "Search (name, patient ID, birth date, accession)",
    modality: "Modality",
    date_from: "Date from",
    date_to: "Date to",
    search: "Search",
    results: "results",
    patient: "Patient",
    referrer: "Referring doctor",
    birth_date: "Birth date",
    patient_id: "Patient ID",
    study_date: "Study date",
    description: "Description",
    accession: "Accession number",
    new_access: "New access",
    shown_once: "These details are shown only now. Hand them to the patient.",
    access_grants: "Access grants",
    audience: "For",
    state: "State",
    revoke: "Revoke",
    access_days: "Valid (days)",
    issue_access: "Issue access",
    series_heading: "Series",
    history: "Access history",
    when: "When",
    who: "Who",
    what: "What",
    delete_heading: "Delete",
    delete_confirm: "I want to delete this study for good.",
    delete_study: "Delete study",
    drop_here: "Drop files, folders or ZIP files here",
    choose_files: "Choose files",
    choose_folder: "Choose folder",
    overall_progress: "Overall progress",
    letter: "Access letter (PDF)",
    reissue: "New password",
    users: "Users",
    api_clients_title: "API clients",
    settings: "Settings",
    terms_title: "Terms of use",
    terms_text: "You handle health data. Hand access details only to the person entitled to them, sign out after work, and report any suspected misuse at once. Every access is logged.",
    accept: "Accept",
    create: "Create",
    name: "Name",
    role: "Role",
    admin_role: "Administrator",
    staff_role: "Staff",
    state_active: "active",
    state_locked: "locked",
    state_inactive: "deactivated",
    last_login: "Last sign-in",
    save_changes: "Change",
    deactivate: "Deactivate",
    activate: "Activate",
    reset_credentials: "Reset password and TOTP (new letter)",
    unlock: "Unlock",
    admin_warning: "This practice has fewer than two active administrators. Add a second one so nobody is locked out.",
    expiring_warning: "API clients expire within 30 days:",
    secret_once: "The secret is shown only now. Store it in your RIS/PACS.",
    client_id: "Client ID",
    client_secret: "Client secret",
    expires: "Expires",
    last_used: "Last used",
    renew: "Renew",
    disable: "Disable",
    state_disabled: "disabled",
    address: "Address (for letters)",
    default_access_days: "Default access period (days)",
    findings_delay: "Release findings after (hours)",
    max_upload: "Upload limit (MB)",
    never: "never",
    filter_expiring: "Access ends within 5 days",
    filter_unopened: "Never opened",
    previous: "Previous",
    findings: "Findings",
    released_at: "Release",
    released: "released",
    pending: "pending",
    release_now: "at once",
    release_default: "after the practice's delay",
    release_date: "on date:",
    attach_findings: "Upload findings (PDF)",
    filter_unreleased: "Findings not released",
    download: "Download",
    your_findings: "Your findings",
    access_log: "Who opened your examination?",
    by_you: "you (this access)",
    by_doctor: "your doctor",
    by_practice: "the practice",
    allow_forwarding: "Patients may forward their images to doctors",
    referrer_early: "Referring doctors see findings before their release to the patient",
    forward_title: "Share with a doctor",
    forward_intro: "You get a separate access code and password for your doctor. You can revoke it at any time.",
    forward_days: "Valid (days)",
    forward_button: "Create access",
    forward_done: "Give these details to your doctor. They are shown only now.",
    back_to_images: "Back to the images",
    your_forwards: "Shared by you",
};

/// German unless the browser prefers English over German.
pub fn texts(headers: &HeaderMap) -> &'static Texts {
    // An explicit choice (the language switch) wins over the browser's preference.
    let chosen = super::extract::cookie_in(headers, "lk_lang");
    match chosen {
        Some("en") => return &EN,
        Some("de") => return &DE,
        _ => {}
    }
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let pos = |lang: &str| {
        accept
            .split(',')
            .position(|part| part.trim().starts_with(lang))
    };
    match (pos("en"), pos("de")) {
        (Some(en), Some(de)) if en < de => &EN,
        (Some(_), None) => &EN,
        _ => &DE,
    }
}

pub fn render<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "access.html")]
pub struct AccessPage {
    pub t: &'static Texts,
    pub action: String,
    pub ask_code: bool,
    pub denied: bool,
    pub ended: bool,
}

pub struct ImageView {
    pub src: String,
    /// The instance shown (the viewer takes the page's first image over by it).
    pub instance: String,
    /// The exact frame (PNG, full size), opened on a tap.
    pub full: String,
    /// The frame as a marked JPEG, if the grant allows downloads.
    pub download: String,
    pub number: i64,
    pub width: i64,
    pub height: i64,
}

pub struct SeriesView {
    pub number: i64,
    pub description: String,
    pub modality: String,
    pub images: Vec<ImageView>,
}

#[derive(Template)]
#[template(path = "viewer.html")]
pub struct ViewerPage {
    pub t: &'static Texts,
    pub patient_name: String,
    pub study_date: String,
    pub study_description: String,
    pub access_until: String,
    /// The gallery for browsers without JavaScript.
    pub series: Vec<SeriesView>,
    /// The first image, in the page itself so it loads before any script runs.
    pub first: Option<ImageView>,
    /// The viewer manifest, escaped for a script element.
    pub manifest_json: String,
    pub findings: Vec<FindingView>,
    /// Who opened the study: (when, who), newest first.
    pub accesses: Vec<(String, &'static str)>,
    /// The patient may forward (a patient grant, and the practice allows it).
    pub can_forward: bool,
    /// Forwards made: (id, until, live).
    pub forwards: Vec<(String, String, bool)>,
    pub can_download: bool,
}

/// A released finding in the viewer: its pages as images and its text.
pub struct FindingView {
    pub id: String,
    pub date: String,
    /// Page numbers from 1; empty if the PDF cannot be shown here.
    pub pages: Vec<usize>,
    pub text: String,
}

#[derive(Template)]
#[template(path = "forward_issued.html")]
pub struct ForwardIssuedPage {
    pub t: &'static Texts,
    pub id: String,
    pub access_code: String,
    pub password: String,
    pub link: String,
    pub expires: String,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub t: &'static Texts,
    pub code: &'a str,
    pub message: &'a str,
    pub request_id: &'a str,
}

pub fn error_page(status: StatusCode, code: &str, message: &str, request_id: &str) -> Response {
    render(
        status,
        &ErrorPage {
            t: &DE,
            code,
            message,
            request_id,
        },
    )
}

#[derive(serde::Deserialize)]
pub struct LangQuery {
    back: Option<String>,
}

/// Who: anyone. Remembers the chosen language in a cookie (no personal data) and
/// goes back to a page of this site.
pub async fn get_lang(
    axum::extract::Path(code): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<LangQuery>,
) -> Response {
    let lang = if code == "en" { "en" } else { "de" };
    // Only our own pages: a free-form target would be an open redirect.
    let back = match q.back.as_deref() {
        Some(b @ ("/practice" | "/access" | "/login")) => b.to_string(),
        _ => "/".to_string(),
    };
    let mut res = axum::response::Redirect::to(&back).into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(&format!(
        "lk_lang={lang}; Path=/; SameSite=Lax; Max-Age=31536000"
    )) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

/// A DICOM date (`YYYYMMDD`) the way the page's language writes it.
pub fn dicom_date(t: &Texts, da: &str) -> String {
    if t.lang == "de" {
        crate::dicom::display_date_de(da)
    } else {
        crate::dicom::display_date(da)
    }
}

/// A Unix time's date the way the page's language writes it.
pub fn unix_date(t: &Texts, unix: i64) -> String {
    if t.lang == "de" {
        crate::clock::format_date_de(unix)
    } else {
        crate::clock::format_date(unix)
    }
}
