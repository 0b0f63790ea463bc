//! A small PDF writer for letters: A4 pages with Helvetica text (WinAnsi, so umlauts
//! and ß print), filled rectangles and QR codes drawn as vectors. No JavaScript, no
//! embedded files, nothing a viewer could run.

use std::fmt::Write as _;

const MM: f64 = 72.0 / 25.4;
pub const A4_WIDTH_MM: f64 = 210.0;
pub const A4_HEIGHT_MM: f64 = 297.0;

#[derive(Default)]
pub struct Page {
    ops: String,
    image: Option<Jpeg>,
}

/// A baseline or progressive JPEG, placed as-is (DCTDecode): no re-encoding.
#[derive(Clone)]
pub struct Jpeg {
    pub bytes: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub components: u8,
}

impl Jpeg {
    /// Reads the frame header; `None` for anything that is not a usable JPEG.
    pub fn parse(bytes: &[u8]) -> Option<Jpeg> {
        if bytes.len() < 4 || bytes[0] != 0xFF || bytes[1] != 0xD8 {
            return None;
        }
        let mut i = 2;
        while i + 9 < bytes.len() {
            if bytes[i] != 0xFF {
                return None;
            }
            let marker = bytes[i + 1];
            let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
            if matches!(marker, 0xC0..=0xC2) {
                let height = u32::from(u16::from_be_bytes([bytes[i + 5], bytes[i + 6]]));
                let width = u32::from(u16::from_be_bytes([bytes[i + 7], bytes[i + 8]]));
                let components = bytes[i + 9];
                if width == 0 || height == 0 || !(components == 1 || components == 3) {
                    return None;
                }
                return Some(Jpeg {
                    bytes: bytes.to_vec(),
                    width,
                    height,
                    components,
                });
            }
            if len < 2 {
                return None;
            }
            i += 2 + len;
        }
        None
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Font {
    Regular,
    Bold,
    Mono,
}

impl Font {
    fn resource(self) -> &'static str {
        match self {
            Font::Regular => "F1",
            Font::Bold => "F2",
            Font::Mono => "F3",
        }
    }

    /// Average glyph width as a share of the font size, for line wrapping.
    fn avg_width(self) -> f64 {
        match self {
            Font::Mono => 0.6,
            Font::Bold => 0.56,
            Font::Regular => 0.52,
        }
    }
}

/// Text in WinAnsiEncoding as a PDF literal string; characters it cannot show become '?'.
fn pdf_string(s: &str) -> String {
    let mut out = String::from("(");
    for c in s.chars() {
        let byte: u8 = match c {
            '€' => 0x80,
            '–' => 0x96,
            '—' => 0x97,
            '„' => 0x84,
            '“' => 0x93,
            '”' => 0x94,
            '‚' => 0x82,
            '‘' => 0x91,
            '’' => 0x92,
            '•' => 0x95,
            c if (c as u32) < 0x20 => b' ',
            c if (c as u32) <= 0xFF && !(0x7F..0xA0).contains(&(c as u32)) => c as u32 as u8,
            _ => b'?',
        };
        match byte {
            b'(' | b')' | b'\\' => {
                out.push('\\');
                out.push(byte as char);
            }
            0x20..=0x7E => out.push(byte as char),
            _ => {
                let _ = write!(out, "\\{byte:03o}");
            }
        }
    }
    out.push(')');
    out
}

impl Page {
    /// Places the page's one image (a logo) with its top-left corner at (x, y).
    pub fn image(&mut self, jpeg: Jpeg, x_mm: f64, y_mm: f64, w_mm: f64, h_mm: f64) {
        let _ = writeln!(
            self.ops,
            "q {:.2} 0 0 {:.2} {:.2} {:.2} cm /Im1 Do Q",
            w_mm * MM,
            h_mm * MM,
            x_mm * MM,
            (A4_HEIGHT_MM - y_mm - h_mm) * MM
        );
        self.image = Some(jpeg);
    }

    /// Text with its baseline at `y_mm` from the top of the page.
    pub fn text(&mut self, x_mm: f64, y_mm: f64, size: f64, font: Font, s: &str) {
        let _ = writeln!(
            self.ops,
            "BT /{} {size:.1} Tf {:.2} {:.2} Td {} Tj ET",
            font.resource(),
            x_mm * MM,
            (A4_HEIGHT_MM - y_mm) * MM,
            pdf_string(s)
        );
    }

    /// Wrapped text; returns the y of the next line.
    pub fn paragraph(
        &mut self,
        x_mm: f64,
        mut y_mm: f64,
        width_mm: f64,
        size: f64,
        font: Font,
        s: &str,
    ) -> f64 {
        let line_height = size * 1.35 / MM;
        let max_chars = ((width_mm * MM) / (size * font.avg_width())).max(10.0) as usize;
        let mut line = String::new();
        for word in s.split_whitespace() {
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > max_chars {
                self.text(x_mm, y_mm, size, font, &line);
                y_mm += line_height;
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        if !line.is_empty() {
            self.text(x_mm, y_mm, size, font, &line);
            y_mm += line_height;
        }
        y_mm
    }

    pub fn rect(&mut self, x_mm: f64, y_mm: f64, w_mm: f64, h_mm: f64) {
        let _ = writeln!(
            self.ops,
            "{:.3} {:.3} {:.3} {:.3} re f",
            x_mm * MM,
            (A4_HEIGHT_MM - y_mm - h_mm) * MM,
            w_mm * MM,
            h_mm * MM
        );
    }

    pub fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64) {
        let _ = writeln!(
            self.ops,
            "0.5 w {:.2} {:.2} m {:.2} {:.2} l S",
            x1 * MM,
            (A4_HEIGHT_MM - y1) * MM,
            x2 * MM,
            (A4_HEIGHT_MM - y2) * MM
        );
    }

    /// A QR code of `data`, `size_mm` square with its top-left corner at (x, y).
    pub fn qr(&mut self, x_mm: f64, y_mm: f64, size_mm: f64, data: &str) {
        let Ok(code) = qrcode::QrCode::new(data.as_bytes()) else {
            return;
        };
        let n = code.width();
        let quiet = 4;
        let module = size_mm / (n + 2 * quiet) as f64;
        let colors = code.to_colors();
        for (i, c) in colors.iter().enumerate() {
            if *c == qrcode::Color::Dark {
                let (row, col) = (i / n, i % n);
                self.rect(
                    x_mm + (col + quiet) as f64 * module,
                    y_mm + (row + quiet) as f64 * module,
                    module * 1.02,
                    module * 1.02,
                );
            }
        }
    }
}

/// Serialises pages into a PDF 1.4 file.
pub fn render(pages: &[Page], title: &str) -> Vec<u8> {
    let mut objects: Vec<String> = Vec::new();
    // 1 catalog, 2 pages, 3–5 fonts, 6 info, then page + content pairs.
    let first_page = 7;
    let kids: Vec<String> = (0..pages.len())
        .map(|i| format!("{} 0 R", first_page + 2 * i))
        .collect();
    objects.push("<< /Type /Catalog /Pages 2 0 R >>".into());
    objects.push(format!(
        "<< /Type /Pages /Kids [{}] /Count {} >>",
        kids.join(" "),
        pages.len()
    ));
    for base in ["Helvetica", "Helvetica-Bold", "Courier-Bold"] {
        objects.push(format!(
            "<< /Type /Font /Subtype /Type1 /BaseFont /{base} /Encoding /WinAnsiEncoding >>"
        ));
    }
    objects.push(format!(
        "<< /Title {} /Producer (Lichtkasten) >>",
        pdf_string(title)
    ));
    // Images come after all pages, so page object numbers stay predictable.
    let mut image_objects: Vec<(usize, &Jpeg)> = Vec::new();
    let first_image = first_page + 2 * pages.len();
    for (i, page) in pages.iter().enumerate() {
        let content_id = first_page + 2 * i + 1;
        let xobject = match &page.image {
            Some(jpeg) => {
                let id = first_image + image_objects.len();
                image_objects.push((id, jpeg));
                format!(" /XObject << /Im1 {id} 0 R >>")
            }
            None => String::new(),
        };
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {:.2} {:.2}] /Contents {content_id} 0 R \
             /Resources << /Font << /F1 3 0 R /F2 4 0 R /F3 5 0 R >>{xobject} >> >>",
            A4_WIDTH_MM * MM,
            A4_HEIGHT_MM * MM
        ));
        objects.push(format!(
            "<< /Length {} >>\nstream\n{}endstream",
            page.ops.len(),
            page.ops
        ));
    }
    let mut out = Vec::new();
    out.extend_from_slice(b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n");
    let mut offsets = Vec::with_capacity(objects.len() + image_objects.len());
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    for (id, jpeg) in &image_objects {
        offsets.push(out.len());
        let space = if jpeg.components == 1 {
            "DeviceGray"
        } else {
            "DeviceRGB"
        };
        out.extend_from_slice(
            format!(
                "{id} 0 obj\n<< /Type /XObject /Subtype /Image /Width {} /Height {} /ColorSpace /{space} \
                 /BitsPerComponent 8 /Filter /DCTDecode /Length {} >>\nstream\n",
                jpeg.width,
                jpeg.height,
                jpeg.bytes.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(&jpeg.bytes);
        out.extend_from_slice(b"\nendstream\nendobj\n");
    }
    let total_objects = objects.len() + image_objects.len();
    let xref = out.len();
    let mut trailer = format!("xref\n0 {}\n0000000000 65535 f \n", total_objects + 1);
    for off in offsets {
        let _ = writeln!(trailer, "{off:010} 00000 n ");
    }
    let _ = write!(
        trailer,
        "trailer\n<< /Size {} /Root 1 0 R /Info 6 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        total_objects + 1
    );
    out.extend_from_slice(trailer.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_and_latin1() {
        assert_eq!(pdf_string("a(b)c\\"), "(a\\(b\\)c\\\\)");
        assert_eq!(pdf_string("Müß"), "(M\\374\\337)");
        assert_eq!(pdf_string("日"), "(?)");
    }

    #[test]
    fn renders_a_well_formed_file() {
        let mut p = Page::default();
        p.text(20.0, 20.0, 12.0, Font::Regular, "Hallo Jürgen");
        p.qr(20.0, 40.0, 40.0, "https://example.org/s/abc");
        let pdf = render(&[p], "Test");
        assert!(pdf.starts_with(b"%PDF-1.4"));
        assert!(pdf.ends_with(b"%%EOF\n"));
        let marker = b"startxref\n";
        let at = pdf
            .windows(marker.len())
            .rposition(|w| w == marker)
            .expect("startxref")
            + marker.len();
        let digits: String = pdf[at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .map(|b| *b as char)
            .collect();
        let xref_at: usize = digits.parse().expect("offset");
        assert!(pdf[xref_at..].starts_with(b"xref"));
    }
}
