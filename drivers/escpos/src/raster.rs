//! Text as a raster image, for characters the printer's code table lacks
//! (a rare ideograph of CJK Extension A or B in a name, e.g. "䶮" U+4DAE
//! or "𠇔" U+201D4, which GBK firmware cannot print). Such a line is
//! printed as a `GS v 0` image ([`crate::command::raster_image`]) drawn
//! here from fonts with `ab_glyph`; no I/O (the caller hands the font
//! bytes in).
//!
//! Fonts are tried in order for each character: the bundled WenQuanYi
//! Micro Hei (`ui/fonts/`, GB 18030's common range) first, then the
//! configured fallbacks (`[printer] raster_fonts`; by default Debian's
//! `fonts-hanazono`, which has Extensions A and B and which
//! `cargo xtask setup` installs). A character no font has is drawn as an
//! empty box (never as a wrong glyph), and [`Bitmap::missing`] counts it.

use std::sync::{Arc, OnceLock};

use ab_glyph::{Font, FontArc, GlyphId, PxScale, ScaleFont, point};

use crate::command::CharSize;
use crate::error::EscposError;

/// The font compiled in (Apache-2.0; `ui/fonts/README.md`).
static BUNDLED_FONT: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../ui/fonts/WenQuanYiMicroHei.ttf"
));

/// A character cell of font A is 24 dots high (12 × 24 ASCII, 24 × 24
/// CJK) at the normal size.
pub const CELL_DOTS: u32 = 24;
/// An 80 mm roll at 203 dpi prints 576 dots a line.
pub const MAX_WIDTH_DOTS: usize = 576;
/// A dot is black from this much coverage on.
const INK_THRESHOLD: f32 = 0.5;

/// A 1-bit image: rows of `width / 8` bytes, top row first, the most
/// significant bit the leftmost dot (the layout of `GS v 0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitmap {
    width: usize,
    height: usize,
    data: Vec<u8>,
    missing: usize,
}

impl Bitmap {
    /// A white image; `width` is rounded up to whole bytes.
    pub fn new(width: usize, height: usize) -> Bitmap {
        let width = width.div_ceil(8) * 8;
        Bitmap {
            width,
            height,
            data: vec![0; width / 8 * height],
            missing: 0,
        }
    }

    /// A bitmap from `GS v 0` rows (`data.len()` must be `bytes_per_row *
    /// height`).
    pub fn from_rows(bytes_per_row: usize, height: usize, data: Vec<u8>) -> Option<Bitmap> {
        (data.len() == bytes_per_row * height).then_some(Bitmap {
            width: bytes_per_row * 8,
            height,
            data,
            missing: 0,
        })
    }

    /// Width in dots (a multiple of 8).
    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    pub fn bytes_per_row(&self) -> usize {
        self.width / 8
    }

    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Characters drawn as a box because no font has them.
    pub fn missing(&self) -> usize {
        self.missing
    }

    pub fn get(&self, x: usize, y: usize) -> bool {
        x < self.width
            && y < self.height
            && self.data[y * self.width / 8 + x / 8] & (0x80 >> (x % 8)) != 0
    }

    /// Blacken the dot at (`x`, `y`); outside the image: nothing.
    pub fn set(&mut self, x: usize, y: usize) {
        if x < self.width && y < self.height {
            self.data[y * self.width / 8 + x / 8] |= 0x80 >> (x % 8);
        }
    }

    pub fn black_dots(&self) -> usize {
        self.data.iter().map(|b| b.count_ones() as usize).sum()
    }

    /// Bold: every black dot also blackens its right neighbour.
    fn embolden(&mut self) {
        let row = self.width / 8;
        for line in self.data.chunks_mut(row) {
            let mut carry = 0u8;
            for byte in line.iter_mut() {
                let original = *byte;
                *byte |= (original >> 1) | carry;
                carry = (original & 1) << 7;
            }
        }
    }
}

/// Fonts to draw text with, tried in order for each character.
#[derive(Clone)]
pub struct GlyphRaster {
    fonts: Vec<FontArc>,
}

impl std::fmt::Debug for GlyphRaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlyphRaster")
            .field("fonts", &self.fonts.len())
            .finish()
    }
}

impl GlyphRaster {
    /// The bundled font alone (parsed once per process).
    pub fn bundled() -> Arc<GlyphRaster> {
        static BUNDLED: OnceLock<Arc<GlyphRaster>> = OnceLock::new();
        BUNDLED
            .get_or_init(|| {
                let font = FontArc::try_from_slice(BUNDLED_FONT)
                    .expect("the bundled font is a valid TrueType file");
                Arc::new(GlyphRaster { fonts: vec![font] })
            })
            .clone()
    }

    /// The bundled font, then each of `fallbacks` (TrueType / OpenType
    /// file contents) in order.
    pub fn with_fallbacks(fallbacks: Vec<Vec<u8>>) -> Result<GlyphRaster, EscposError> {
        let mut fonts = GlyphRaster::bundled().fonts.clone();
        for (i, bytes) in fallbacks.into_iter().enumerate() {
            let font = FontArc::try_from_vec(bytes).map_err(|e| {
                EscposError::Config(format!("raster font {} is not a font: {e}", i + 1))
            })?;
            fonts.push(font);
        }
        Ok(GlyphRaster { fonts })
    }

    /// Does one of the fonts have `c`?
    pub fn has_glyph(&self, c: char) -> bool {
        self.font_for(c).is_some()
    }

    fn font_for(&self, c: char) -> Option<&FontArc> {
        self.fonts.iter().find(|f| f.glyph_id(c) != GlyphId(0))
    }

    /// Draw one line of `text` at character size `size` (24 dots a
    /// height step; the width scaled by the width step), at most
    /// [`MAX_WIDTH_DOTS`] wide (the rest is cut off, as a printer cuts a
    /// line that is too long).
    pub fn render(&self, text: &str, size: CharSize, bold: bool) -> Bitmap {
        let height_px = (CELL_DOTS * u32::from(size.height())) as f32;
        let width_px = (CELL_DOTS * u32::from(size.width())) as f32;
        let scale = PxScale {
            x: width_px,
            y: height_px,
        };
        let chars: Vec<char> = text.chars().filter(|c| !c.is_control()).collect();
        // Pen positions first: the width decides the image.
        let mut placed = Vec::with_capacity(chars.len());
        let mut pen = 0.0f32;
        for &c in &chars {
            let font = self.font_for(c);
            let advance = match font {
                Some(f) => f.as_scaled(scale).h_advance(f.glyph_id(c)),
                // A box one full-width cell wide.
                None => width_px,
            };
            placed.push((c, font, pen, advance));
            pen += advance;
        }
        let width = (pen.ceil() as usize).clamp(8, MAX_WIDTH_DOTS);
        let height = height_px as usize;
        let mut bitmap = Bitmap::new(width, height);
        for (c, font, x, advance) in placed {
            match font {
                Some(font) => draw_glyph(&mut bitmap, font, c, scale, x),
                None => {
                    draw_box(&mut bitmap, x, advance, height);
                    bitmap.missing += 1;
                }
            }
        }
        if bold {
            bitmap.embolden();
        }
        bitmap
    }
}

/// One glyph with its baseline at the font's ascent, so every font's
/// glyphs share one baseline.
fn draw_glyph(bitmap: &mut Bitmap, font: &FontArc, c: char, scale: PxScale, x: f32) {
    let scaled = font.as_scaled(scale);
    let glyph = font
        .glyph_id(c)
        .with_scale_and_position(scale, point(x, scaled.ascent()));
    let Some(outline) = font.outline_glyph(glyph) else {
        return; // a space
    };
    let bounds = outline.px_bounds();
    outline.draw(|gx, gy, coverage| {
        if coverage >= INK_THRESHOLD {
            let px = bounds.min.x + gx as f32;
            let py = bounds.min.y + gy as f32;
            if px >= 0.0 && py >= 0.0 {
                bitmap.set(px as usize, py as usize);
            }
        }
    });
}

/// An empty box in the cell: the character exists but no font has it.
fn draw_box(bitmap: &mut Bitmap, x: f32, advance: f32, height: usize) {
    let left = x as usize + 2;
    let right = (x + advance) as usize;
    let right = right.saturating_sub(3).max(left);
    let (top, bottom) = (height / 8, height - height / 8 - 1);
    for px in left..=right {
        bitmap.set(px, top);
        bitmap.set(px, bottom);
    }
    for py in top..=bottom {
        bitmap.set(left, py);
        bitmap.set(right, py);
    }
}
