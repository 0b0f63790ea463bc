//! Findings shown inside the viewer: pages rasterised on the server (phones that do
//! not show PDFs inline still see them) and a plain-text version for screen readers
//! and copying. Only pure-Rust parsers touch the PDF; nothing in it is ever run.

use crate::dicom::render::Rendered;

/// Pages shown in the viewer; longer reports are read in the downloaded original.
pub const MAX_PAGES: usize = 30;
/// About 150 dpi for A4: sharp on a phone at full width, small enough to load fast.
const PAGE_WIDTH_PX: f32 = 1240.0;
/// A page taller than this (odd page sizes) is scaled down to it.
const MAX_PAGE_HEIGHT_PX: f32 = 4000.0;
/// The text version is for reading, not for archiving a whole book.
const MAX_TEXT_CHARS: usize = 200_000;

#[derive(Debug, thiserror::Error)]
pub enum FindingsViewError {
    #[error("the PDF cannot be read")]
    Unreadable,
    #[error("no such page")]
    NoSuchPage,
}

/// How many pages the viewer shows (at most [`MAX_PAGES`]); `None` if unreadable.
pub fn page_count(pdf: Vec<u8>) -> Option<usize> {
    guarded(move || {
        let doc = hayro::hayro_syntax::Pdf::new(std::sync::Arc::new(pdf)).ok()?;
        Some(doc.pages().len().min(MAX_PAGES))
    })
    .flatten()
}

/// Renders page `index` (zero-based) on white, about 150 dpi for A4.
pub fn render_page(pdf: Vec<u8>, index: usize) -> Result<Rendered, FindingsViewError> {
    if index >= MAX_PAGES {
        return Err(FindingsViewError::NoSuchPage);
    }
    guarded(move || {
        let doc = hayro::hayro_syntax::Pdf::new(std::sync::Arc::new(pdf))
            .map_err(|_| FindingsViewError::Unreadable)?;
        let pages = doc.pages();
        let page = pages.get(index).ok_or(FindingsViewError::NoSuchPage)?;
        let (w, h) = page.render_dimensions();
        if !(w.is_finite() && h.is_finite()) || w < 1.0 || h < 1.0 {
            return Err(FindingsViewError::Unreadable);
        }
        let scale = (PAGE_WIDTH_PX / w).min(MAX_PAGE_HEIGHT_PX / h);
        let cache = hayro::RenderCache::new();
        let pixmap = hayro::render(
            page,
            &cache,
            &hayro::hayro_interpret::InterpreterSettings::default(),
            &hayro::RenderSettings::default(),
            &hayro::PixmapSettings {
                x_scale: scale,
                y_scale: scale,
                bg_color: hayro::vello_cpu::color::palette::css::WHITE,
            },
        );
        let (width, height) = (u32::from(pixmap.width()), u32::from(pixmap.height()));
        // Drawn on opaque white, so premultiplied RGBA is plain RGBA: drop alpha.
        let pixels = pixmap
            .data_as_u8_slice()
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect();
        Ok(Rendered {
            width,
            height,
            channels: 3,
            pixels,
        })
    })
    .unwrap_or(Err(FindingsViewError::Unreadable))
}

/// The report's text for reading on any screen: paragraphs kept, the PDF's line
/// breaks inside a paragraph joined (they only fit the printed page), lists and
/// headings ("Befund:") left on their own lines. Empty for a scanned report.
pub fn text(pdf: &[u8]) -> String {
    let raw = guarded(|| pdf_extract::extract_text_from_mem(pdf).ok())
        .flatten()
        .unwrap_or_default();
    let mut out = String::new();
    let mut blank_before = false;
    for line in raw.lines().map(str::trim) {
        if line.is_empty() {
            blank_before = !out.is_empty();
            continue;
        }
        if !out.is_empty() {
            let starts_item = line.starts_with(['-', '•', '*'])
                || line.split_once(['.', ')']).is_some_and(|(n, _)| {
                    !n.is_empty() && n.len() <= 2 && n.bytes().all(|b| b.is_ascii_digit())
                });
            let ends_heading = out.ends_with(':');
            out.push_str(if blank_before {
                "\n\n"
            } else if starts_item || ends_heading {
                "\n"
            } else {
                " "
            });
        }
        blank_before = false;
        out.push_str(line);
        if out.len() > MAX_TEXT_CHARS {
            break;
        }
    }
    out.chars().take(MAX_TEXT_CHARS).collect()
}

/// The PDF parsers are third-party code fed with uploaded files: a panic in one of
/// them must cost this one answer, not the worker thread.
fn guarded<T>(f: impl FnOnce() -> T) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(lines: &[&str]) -> Vec<u8> {
        use crate::letters::pdf::{Font, Page, render};
        let mut page = Page::default();
        for (n, line) in lines.iter().enumerate() {
            page.text(20.0, 30.0 + 5.0 * n as f64, 11.0, Font::Regular, line);
        }
        render(&[page], "t")
    }

    #[test]
    fn wrapped_lines_join_and_lists_stay() {
        let pdf = report(&[
            "Befund:",
            "Kein Nachweis einer",
            "Fraktur.",
            "1. erstens",
            "2. zweitens",
        ]);
        let text = text(&pdf);
        assert!(text.contains("Kein Nachweis einer Fraktur."), "{text}");
        assert!(text.contains("\n1. erstens\n2. zweitens"), "{text}");
        assert!(text.starts_with("Befund:\n"), "{text}");
        assert_eq!(page_count(pdf.clone()), Some(1));
        let page = render_page(pdf, 0).expect("page");
        assert_eq!(page.width, 1240);
        assert!(
            page.pixels.iter().filter(|&&b| b < 100).count() > 100,
            "text is drawn"
        );
    }

    #[test]
    fn garbage_is_refused_without_panic() {
        assert_eq!(page_count(b"%PDF-1.4 nonsense %%EOF".to_vec()), None);
        assert!(render_page(b"not a pdf".to_vec(), 0).is_err());
        assert_eq!(text(b"%PDF-1.7\n1 0 obj << /Length 99999999 >> stream"), "");
    }
}
