//! Decoding JPEG and PNG files to interleaved RGB.
//!
//! Baseline/progressive YCbCr and RGB JPEGs (nearly every photo) go straight to zune-jpeg
//! into a buffer the caller reuses; everything else (PNG, grayscale and CMYK JPEGs) goes
//! through the `image` crate, which drives the same zune-jpeg decoder, so both paths give the
//! same pixels. Reusing the buffers matters: a fresh 150 KB output, a copy of the file and a
//! second header parse per image (what `image::load_from_memory` does) cost page faults and
//! time on every image of every epoch.

use std::io::Read;
use std::path::Path;

use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;

use crate::error::CoreError;

/// A decoded RGB image, 8 bits per channel, interleaved, row-major.
#[derive(Debug, Default, Clone)]
pub struct Rgb {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height * 3` bytes (a reused buffer may hold more; only these count).
    pub data: Vec<u8>,
}

/// Reads and decodes a JPEG or PNG file to RGB (grayscale replicated, alpha dropped: PIL's
/// `convert("RGB")`). Errors name the file.
pub fn decode_file(path: &Path) -> Result<Rgb, CoreError> {
    let (mut bytes, mut img) = (Vec::new(), Rgb::default());
    decode_file_into(path, &mut bytes, &mut img)?;
    img.data.truncate(img.width * img.height * 3);
    Ok(img)
}

/// [`decode_file`] into reused buffers: `bytes` receives the file, `img` the pixels.
pub fn decode_file_into(path: &Path, bytes: &mut Vec<u8>, img: &mut Rgb) -> Result<(), CoreError> {
    bytes.clear();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(bytes))
        .map_err(|source| CoreError::Io {
            path: path.display().to_string(),
            source,
        })?;
    decode_into(bytes, img).map_err(|why| {
        // Decoder messages can span lines; an error names the file on one line.
        let why = why.split_whitespace().collect::<Vec<_>>().join(" ");
        CoreError::Data(format!("cannot decode image {}: {why}", path.display()))
    })
}

/// Decodes JPEG or PNG bytes to RGB.
pub fn decode_bytes(bytes: &[u8]) -> Result<Rgb, String> {
    let mut img = Rgb::default();
    decode_into(bytes, &mut img)?;
    img.data.truncate(img.width * img.height * 3);
    Ok(img)
}

/// Decodes JPEG or PNG bytes into `img`, reusing its buffer.
pub fn decode_into(bytes: &[u8], img: &mut Rgb) -> Result<(), String> {
    let format = ::image::guess_format(bytes).map_err(|_| "not a JPEG or PNG file".to_string())?;
    match format {
        ::image::ImageFormat::Jpeg => {
            if decode_jpeg_rgb(bytes, img)? {
                return Ok(());
            }
        }
        ::image::ImageFormat::Png => {}
        other => return Err(format!("unsupported format {other:?} (only JPEG and PNG)")),
    }
    let dynamic =
        ::image::load_from_memory_with_format(bytes, format).map_err(|e| e.to_string())?;
    let rgb = dynamic.into_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    if w == 0 || h == 0 {
        return Err("image has no pixels".into());
    }
    *img = Rgb {
        width: w,
        height: h,
        data: rgb.into_raw(),
    };
    Ok(())
}

/// zune-jpeg straight into `img` for YCbCr and RGB JPEGs, with the options the `image` crate
/// uses (lenient, no size limit, RGB out). Ok(false): another colour space, left to `image`.
fn decode_jpeg_rgb(bytes: &[u8], img: &mut Rgb) -> Result<bool, String> {
    let options = DecoderOptions::default()
        .set_strict_mode(false)
        .set_max_width(usize::MAX)
        .set_max_height(usize::MAX)
        .jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut dec = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    dec.decode_headers().map_err(|e| format!("JPEG: {e}"))?;
    if !matches!(
        dec.input_colorspace(),
        Some(ColorSpace::YCbCr | ColorSpace::RGB)
    ) {
        return Ok(false);
    }
    let (w, h) = dec.dimensions().ok_or("JPEG without a frame header")?;
    if w == 0 || h == 0 {
        return Err("image has no pixels".into());
    }
    let size = dec
        .output_buffer_size()
        .ok_or("JPEG without a frame header")?;
    if size != w * h * 3 {
        return Ok(false);
    }
    if img.data.len() < size {
        img.data.resize(size, 0);
    }
    dec.decode_into(&mut img.data[..size])
        .map_err(|e| format!("JPEG: {e}"))?;
    img.width = w;
    img.height = h;
    Ok(true)
}
