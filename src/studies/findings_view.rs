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

/// The report's text, whitespace tidied; empty if it has none (a scanned report).
pub fn text(pdf: &[u8]) -> String {
    let raw = guarded(|| pdf_extract::extract_text_from_mem(pdf).ok())
        .flatten()
        .unwrap_or_default();
    let mut out = String::new();
    let mut blank_lines = 0;
    for line in raw.lines().map(str::trim_end) {
        if line.trim().is_empty() {
            blank_lines += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_lines > 0 { "\n\n" } else { "\n" });
        }
        blank_lines = 0;
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
