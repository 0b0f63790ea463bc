//! Server-rendered pages (askama) and their texts, German first, English by
//! Accept-Language. Patient text is always escaped by the templates.

use askama::Template;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

pub struct Texts {
    pub lang: &'static str,
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
    pub error_title: &'static str,
    pub error_quote: &'static str,
    pub back_to_start: &'static str,
}

const DE: Texts = Texts {
    lang: "de",
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
    error_title: "Das hat nicht geklappt",
    error_quote: "Bitte nennen Sie bei Rückfragen:",
    back_to_start: "Zur Startseite",
};

const EN: Texts = Texts {
    lang: "en",
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
    error_title: "That did not work",
    error_quote: "If you contact us, please quote:",
    back_to_start: "Back to start",
};

/// German unless the browser prefers English over German.
pub fn texts(headers: &HeaderMap) -> &'static Texts {
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
    pub series: Vec<SeriesView>,
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
