//! Letters as PDF: the patient's access letter and a staff member's first-login
//! letter. German first, English below.

pub mod pdf;

use pdf::{Font, Page};

pub struct PracticeHeader<'a> {
    pub name: &'a str,
    pub address: &'a str,
    /// The practice's logo, drawn top right.
    pub logo: Option<pdf::Jpeg>,
}

pub struct AccessLetter<'a> {
    pub practice: PracticeHeader<'a>,
    pub patient_name: &'a str,
    pub birth_date: &'a str,
    pub study_date: &'a str,
    pub study_description: &'a str,
    pub link: &'a str,
    pub access_code: &'a str,
    pub password: &'a str,
    pub expires: &'a str,
    pub start_url: &'a str,
}

/// The practice's logo as letters print it (`None` if it has none or it is unreadable).
pub async fn practice_logo(
    db: &crate::db::Db,
    practice_id: &str,
) -> Result<Option<pdf::Jpeg>, crate::db::DbError> {
    Ok(db
        .practice_logo(practice_id)
        .await?
        .as_deref()
        .and_then(pdf::Jpeg::parse))
}

const LEFT: f64 = 22.0;
const WIDTH: f64 = 166.0;

fn header(p: &mut Page, practice: &PracticeHeader<'_>) -> f64 {
    if let Some(logo) = &practice.logo {
        // Fit into 45 × 20 mm, keeping the aspect ratio.
        let aspect = f64::from(logo.width) / f64::from(logo.height);
        let (w, h) = if aspect > 45.0 / 20.0 {
            (45.0, 45.0 / aspect)
        } else {
            (20.0 * aspect, 20.0)
        };
        p.image(logo.clone(), LEFT + WIDTH - w, 14.0, w, h);
    }
    p.text(LEFT, 24.0, 15.0, Font::Bold, practice.name);
    let mut y = 30.0;
    for line in practice.address.lines().take(4) {
        p.text(LEFT, y, 9.5, Font::Regular, line);
        y += 4.5;
    }
    p.line(LEFT, y + 1.0, LEFT + WIDTH, y + 1.0);
    y + 9.0
}

/// The patient's letter: QR code of the link, the link, the access code grouped for
/// typing, the password, the end date, three steps and a privacy note.
pub fn access_letter(l: &AccessLetter<'_>) -> Vec<u8> {
    let mut p = Page::default();
    let mut y = header(&mut p, &l.practice);
    p.text(LEFT, y, 16.0, Font::Bold, "Ihre Bilder online ansehen");
    y += 6.0;
    p.text(LEFT, y, 10.0, Font::Regular, "View your images online");
    y += 9.0;
    for (label, value) in [
        ("Patient/in:", l.patient_name),
        ("Geburtsdatum:", l.birth_date),
        (
            "Untersuchung:",
            &format!("{} – {}", l.study_date, l.study_description),
        ),
    ] {
        p.text(LEFT, y, 10.5, Font::Bold, label);
        p.text(LEFT + 32.0, y, 10.5, Font::Regular, value);
        y += 5.5;
    }
    y += 4.0;
    let qr_top = y;
    p.qr(LEFT + WIDTH - 48.0, qr_top - 4.0, 50.0, l.link);
    p.text(LEFT, y, 10.0, Font::Bold, "Zugangscode / Access code");
    y += 9.0;
    p.text(LEFT, y, 20.0, Font::Mono, l.access_code);
    y += 9.0;
    p.text(LEFT, y, 10.0, Font::Bold, "Passwort / Password");
    y += 9.0;
    p.text(LEFT, y, 20.0, Font::Mono, l.password);
    y += 9.0;
    p.text(LEFT, y, 10.0, Font::Bold, "Zugang bis / Access until");
    y += 6.0;
    p.text(LEFT, y, 12.0, Font::Regular, l.expires);
    y = y.max(qr_top + 50.0) + 4.0;
    p.text(LEFT, y, 9.0, Font::Regular, "Link:");
    y = p.paragraph(LEFT + 10.0, y, WIDTH - 10.0, 9.0, Font::Mono, l.link) + 4.0;

    p.text(LEFT, y, 12.0, Font::Bold, "So geht es");
    y += 6.0;
    let steps_de = [
        format!("1. Scannen Sie den QR-Code mit der Kamera Ihres Handys, oder öffnen Sie {} im Browser.", l.start_url),
        "2. Geben Sie das Passwort ein (beim Start über die Internetseite auch den Zugangscode).".to_string(),
        "3. Ihre Bilder erscheinen. Wenn Sie das Fenster schließen, endet der Zugang; Sie können ihn mit diesem Brief erneut öffnen.".to_string(),
    ];
    for s in &steps_de {
        y = p.paragraph(LEFT, y, WIDTH, 10.0, Font::Regular, s) + 1.0;
    }
    y += 2.0;
    y = p.paragraph(
        LEFT,
        y,
        WIDTH,
        9.0,
        Font::Regular,
        "Datenschutz: Bewahren Sie diesen Brief sicher auf. Wer Zugangscode und Passwort kennt, kann die Bilder sehen. \
         Die Praxis kann den Zugang jederzeit widerrufen. Die Bilder sind nicht für die Befundung bestimmt.",
    ) + 5.0;
    p.line(LEFT, y - 2.0, LEFT + WIDTH, y - 2.0);
    p.text(LEFT, y + 3.0, 11.0, Font::Bold, "In English");
    y += 9.0;
    let steps_en = [
        format!(
            "1. Scan the QR code with your phone's camera, or open {} in a browser.",
            l.start_url
        ),
        "2. Enter the password (and, when starting from the web page, the access code)."
            .to_string(),
        "3. Your images appear. Closing the window ends access; this letter opens it again."
            .to_string(),
    ];
    for s in &steps_en {
        y = p.paragraph(LEFT, y, WIDTH, 9.5, Font::Regular, s) + 0.5;
    }
    p.paragraph(
        LEFT,
        y + 1.5,
        WIDTH,
        8.5,
        Font::Regular,
        "Privacy: keep this letter safe. Anyone with the access code and password can see the images. \
         The practice can revoke access at any time. The images are not for diagnostic use.",
    );
    pdf::render(&[p], "Zugangsbrief / Access letter")
}

/// One study on a patient's combined letter.
pub struct StudyAccess<'a> {
    pub study_date: &'a str,
    pub study_description: &'a str,
    pub link: &'a str,
    pub access_code: &'a str,
    pub password: &'a str,
    pub expires: &'a str,
}

pub struct PatientLetter<'a> {
    pub practice: PracticeHeader<'a>,
    pub patient_name: &'a str,
    pub birth_date: &'a str,
    pub studies: &'a [StudyAccess<'a>],
    pub start_url: &'a str,
}

/// Studies that fit on one page of [`patient_letter`].
pub const STUDIES_PER_LETTER: usize = 4;

/// One page for several studies of one patient: a block per study with its own QR
/// code, code, password and end date; the steps and the privacy note once.
pub fn patient_letter(l: &PatientLetter<'_>) -> Vec<u8> {
    let mut p = Page::default();
    let mut y = header(&mut p, &l.practice);
    p.text(
        LEFT,
        y,
        15.0,
        Font::Bold,
        "Ihre Untersuchungen online ansehen",
    );
    y += 5.5;
    p.text(LEFT, y, 9.5, Font::Regular, "View your studies online");
    y += 7.0;
    p.text(LEFT, y, 10.5, Font::Bold, "Patient/in:");
    p.text(LEFT + 32.0, y, 10.5, Font::Regular, l.patient_name);
    y += 5.0;
    p.text(LEFT, y, 10.5, Font::Bold, "Geburtsdatum:");
    p.text(LEFT + 32.0, y, 10.5, Font::Regular, l.birth_date);
    y += 6.0;
    for s in l.studies.iter().take(STUDIES_PER_LETTER) {
        p.line(LEFT, y, LEFT + WIDTH, y);
        let top = y + 5.0;
        p.qr(LEFT + WIDTH - 36.0, top - 3.0, 36.0, s.link);
        p.text(
            LEFT,
            top + 1.0,
            11.0,
            Font::Bold,
            &format!("{} – {}", s.study_date, s.study_description),
        );
        p.text(
            LEFT,
            top + 8.0,
            9.0,
            Font::Regular,
            "Zugangscode / Access code",
        );
        p.text(LEFT + 48.0, top + 8.0, 13.0, Font::Mono, s.access_code);
        p.text(LEFT, top + 15.0, 9.0, Font::Regular, "Passwort / Password");
        p.text(LEFT + 48.0, top + 15.0, 13.0, Font::Mono, s.password);
        p.text(LEFT, top + 22.0, 9.0, Font::Regular, "Zugang bis / Until");
        p.text(LEFT + 48.0, top + 22.0, 10.0, Font::Regular, s.expires);
        p.text(LEFT, top + 28.0, 7.5, Font::Mono, s.link);
        y = top + 36.0;
    }
    p.line(LEFT, y, LEFT + WIDTH, y);
    y += 6.0;
    for s in [
        format!(
            "1. QR-Code der Untersuchung mit dem Handy scannen oder {} öffnen. / Scan the study's QR code or open {}.",
            l.start_url, l.start_url
        ),
        "2. Passwort eingeben (auf der Internetseite auch den Zugangscode). / Enter the password (and, on the web page, the access code).".to_string(),
        "3. Die Bilder erscheinen; Fenster schließen beendet den Zugang. / The images appear; closing the window ends access.".to_string(),
    ] {
        y = p.paragraph(LEFT, y, WIDTH, 9.0, Font::Regular, &s) + 0.5;
    }
    p.paragraph(
        LEFT,
        y + 2.0,
        WIDTH,
        8.5,
        Font::Regular,
        "Datenschutz: Bewahren Sie diesen Brief sicher auf. Wer Zugangscode und Passwort kennt, kann die Bilder sehen. \
         Die Praxis kann den Zugang jederzeit widerrufen. / Privacy: keep this letter safe; anyone with code and \
         password can see the images; the practice can revoke access at any time.",
    );
    pdf::render(&[p], "Zugangsbrief / Access letter")
}

pub struct StaffLetter<'a> {
    pub practice: PracticeHeader<'a>,
    pub display_name: &'a str,
    pub username: &'a str,
    pub one_time_password: &'a str,
    pub totp_uri: &'a str,
    pub totp_secret: &'a str,
    pub login_url: &'a str,
}

/// A staff member's first-login letter: one-time password, TOTP QR code, login address.
pub fn staff_letter(l: &StaffLetter<'_>) -> Vec<u8> {
    let mut p = Page::default();
    let mut y = header(&mut p, &l.practice);
    p.text(LEFT, y, 16.0, Font::Bold, "Ihr Zugang zu Lichtkasten");
    y += 6.0;
    p.text(LEFT, y, 10.0, Font::Regular, "Your Lichtkasten account");
    y += 10.0;
    let qr_top = y;
    p.qr(LEFT + WIDTH - 52.0, qr_top - 4.0, 54.0, l.totp_uri);
    for (label, value, font) in [
        ("Name:", l.display_name, Font::Regular),
        ("Benutzername / Username:", l.username, Font::Mono),
        (
            "Einmal-Passwort / One-time password:",
            l.one_time_password,
            Font::Mono,
        ),
        ("Anmeldung / Sign-in:", l.login_url, Font::Regular),
    ] {
        p.text(LEFT, y, 10.0, Font::Bold, label);
        y += 6.0;
        p.text(LEFT, y, 13.0, font, value);
        y += 8.0;
    }
    y = y.max(qr_top + 54.0) + 2.0;
    p.text(LEFT, y, 9.0, Font::Regular, "TOTP-Schlüssel / TOTP key:");
    p.text(LEFT + 45.0, y, 9.0, Font::Mono, l.totp_secret);
    y += 9.0;
    for s in [
        "1. Öffnen Sie die Anmeldeseite und melden Sie sich mit Benutzername und Einmal-Passwort an.",
        "2. Wählen Sie ein neues Passwort mit mindestens 12 Zeichen.",
        "3. Scannen Sie den QR-Code mit einer Authenticator-App (z. B. FreeOTP, Google Authenticator) und geben Sie den Code ein.",
        "Bewahren Sie diesen Brief nicht zusammen mit Ihrem Handy auf und vernichten Sie ihn nach der ersten Anmeldung.",
    ] {
        y = p.paragraph(LEFT, y, WIDTH, 10.0, Font::Regular, s) + 1.0;
    }
    p.line(LEFT, y + 1.0, LEFT + WIDTH, y + 1.0);
    y += 7.0;
    for s in [
        "1. Open the sign-in page and sign in with your username and the one-time password.",
        "2. Choose a new password of at least 12 characters.",
        "3. Scan the QR code with an authenticator app (e.g. FreeOTP, Google Authenticator) and enter the code.",
        "Do not keep this letter with your phone; destroy it after your first sign-in.",
    ] {
        y = p.paragraph(LEFT, y, WIDTH, 9.5, Font::Regular, s) + 0.5;
    }
    pdf::render(&[p], "Zugang / Account")
}
