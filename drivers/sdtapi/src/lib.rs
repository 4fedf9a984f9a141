//! An ID reader vendor's `sdtapi` library, loaded at run time.
//!
//! Most Chinese ID card readers ship a shared library with the same C
//! functions (`SDT_OpenPort`, `SDT_StartFindIDCard`, `SDT_SelectIDCard`,
//! `SDT_ReadBaseMsg`, ...). Each returns an `int` that is the SAM's SW3 byte
//! (`0x90` done, `0x9F` card found, `0x80` no card, ...) or one of the
//! library's own transport codes (`0x01` port cannot be opened, `0x02`
//! timeout, ...). This crate loads such a library with `libloading` and
//! offers each function as a safe method returning that code and the data;
//! what the codes mean is `kiosk-idreader`'s business.
//!
//! The workspace forbids unsafe code. Here it is denied too, and allowed
//! only in the module `calls`, where every block says why it is sound.
//! Every buffer handed to the library is larger than the function's
//! documented output (256 bytes of text, 1024 of photo, 1024 of
//! fingerprint, 70 of appended address, 16 of SAM id, 8 of card serial),
//! and a length the library reports beyond its buffer is an error, never
//! read. Card data comes back in [`Zeroizing`] buffers.
//!
//! All calls pass `iIfOpen = 0`: the caller opens and closes the port
//! (`SDT_OpenPort` / `SDT_ClosePort`) itself. A library is not known to be
//! thread-safe, so [`SdtApi`] is used by one thread (the reader's own).

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

pub use calls::SdtApi;

/// Card data as the library wrote it, wiped on drop.
pub type SecretBytes = Zeroizing<Vec<u8>>;

/// Buffer size for each output of a read (text, photo, fingerprint,
/// appended address): four times the largest documented output.
pub const READ_BUFFER_LEN: usize = 4096;
/// Buffer size for the short outputs (card serial, SAM id).
pub const SHORT_BUFFER_LEN: usize = 64;

/// The one error type of this crate: the library cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SdtapiError {
    /// `dlopen` failed: no such file, not a shared library, wrong
    /// architecture, a missing dependency.
    #[error("cannot load the sdtapi library {}: {source}", path.display())]
    Load {
        path: PathBuf,
        source: libloading::Error,
    },
    /// The library lacks a function every reader needs.
    #[error("the sdtapi library {} has no function {symbol}: {source}", path.display())]
    Symbol {
        path: PathBuf,
        symbol: &'static str,
        source: libloading::Error,
    },
    /// The library says it wrote more than the buffer it was given.
    #[error("{function} reported {len} bytes, more than its {capacity}-byte buffer")]
    Overrun {
        function: &'static str,
        len: u32,
        capacity: usize,
    },
}

/// The data of `SDT_ReadBaseMsg` / `SDT_ReadBaseFPMsg`, wiped on drop.
/// `Debug` shows sizes only.
pub struct CardParts {
    /// The 256-byte UCS-2 text block.
    pub text: Zeroizing<Vec<u8>>,
    /// The 1024-byte WLT photo.
    pub photo: Zeroizing<Vec<u8>>,
    /// The fingerprint data (`SDT_ReadBaseFPMsg` only; may be empty).
    pub fingerprint: Option<Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for CardParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardParts")
            .field("text_len", &self.text.len())
            .field("photo_len", &self.photo.len())
            .field(
                "fingerprint_len",
                &self.fingerprint.as_ref().map(|fp| fp.len()),
            )
            .finish()
    }
}

/// The first `len` bytes of `buf`, or [`SdtapiError::Overrun`].
fn filled(
    function: &'static str,
    mut buf: Zeroizing<Vec<u8>>,
    len: u32,
) -> Result<Zeroizing<Vec<u8>>, SdtapiError> {
    let capacity = buf.len();
    match usize::try_from(len) {
        Ok(n) if n <= capacity => {
            buf.truncate(n);
            Ok(buf)
        }
        _ => Err(SdtapiError::Overrun {
            function,
            len,
            capacity,
        }),
    }
}

fn load_error(path: &Path, source: libloading::Error) -> SdtapiError {
    SdtapiError::Load {
        path: path.to_path_buf(),
        source,
    }
}

/// The calls into the library: the only unsafe code of the crate.
#[allow(unsafe_code)]
mod calls {
    use std::ffi::{c_int, c_uchar, c_uint};
    use std::path::{Path, PathBuf};

    use libloading::Library;
    use zeroize::Zeroizing;

    use super::{
        CardParts, READ_BUFFER_LEN, SHORT_BUFFER_LEN, SdtapiError, SecretBytes, filled, load_error,
    };

    // The documented prototypes; "system" is stdcall on 32-bit Windows
    // (where these libraries come from) and the C convention elsewhere.
    type PortFn = unsafe extern "system" fn(c_int) -> c_int;
    type PortOpenFn = unsafe extern "system" fn(c_int, c_int) -> c_int;
    type BufferFn = unsafe extern "system" fn(c_int, *mut c_uchar, c_int) -> c_int;
    type ReadBaseFn = unsafe extern "system" fn(
        c_int,
        *mut c_uchar,
        *mut c_uint,
        *mut c_uchar,
        *mut c_uint,
        c_int,
    ) -> c_int;
    type ReadBaseFpFn = unsafe extern "system" fn(
        c_int,
        *mut c_uchar,
        *mut c_uint,
        *mut c_uchar,
        *mut c_uint,
        *mut c_uchar,
        *mut c_uint,
        c_int,
    ) -> c_int;
    type ReadAppFn = unsafe extern "system" fn(c_int, *mut c_uchar, *mut c_uint, c_int) -> c_int;

    /// A loaded sdtapi library and its functions.
    pub struct SdtApi {
        path: PathBuf,
        open_port: PortFn,
        close_port: PortFn,
        sam_status: PortOpenFn,
        reset_sam: Option<PortOpenFn>,
        sam_id: BufferFn,
        find_card: BufferFn,
        select_card: BufferFn,
        read_base: ReadBaseFn,
        read_base_fp: Option<ReadBaseFpFn>,
        read_new_app: Option<ReadAppFn>,
        // Last: the function pointers above point into it.
        _library: Library,
    }

    impl std::fmt::Debug for SdtApi {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("SdtApi")
                .field("path", &self.path)
                .field("fingerprint", &self.read_base_fp.is_some())
                .field("appended_address", &self.read_new_app.is_some())
                .finish()
        }
    }

    /// Look up `name` as a `T`, copied out of the library.
    ///
    /// # Safety
    /// `T` must be the function pointer type of `name`'s documented
    /// prototype, and the pointer must not outlive `library`.
    unsafe fn symbol<T: Copy>(
        library: &Library,
        name: &'static str,
    ) -> Result<T, libloading::Error> {
        // SAFETY: the caller vouches for `T`; `get` only looks the name up.
        unsafe { library.get::<T>(name.as_bytes()).map(|s| *s) }
    }

    impl SdtApi {
        /// Load the library at `path` and look up its functions.
        /// `SDT_ResetSAM`, `SDT_ReadBaseFPMsg` and `SDT_ReadNewAppMsg` are
        /// optional; the others are required.
        pub fn load(path: &Path) -> Result<SdtApi, SdtapiError> {
            // SAFETY: loading runs the library's initialisers. The operator
            // configured this file as the reader vendor's library; nothing
            // more can be checked about a foreign binary before loading it.
            let library = unsafe { Library::new(path) }.map_err(|e| load_error(path, e))?;
            let required = |name: &'static str, e: libloading::Error| SdtapiError::Symbol {
                path: path.to_path_buf(),
                symbol: name,
                source: e,
            };
            macro_rules! get {
                ($name:literal) => {
                    // SAFETY: the type annotation at each use is the
                    // documented prototype of $name; the pointers live in
                    // `SdtApi` beside the library, which is dropped last.
                    unsafe { symbol(&library, concat!($name, "\0")) }
                        .map_err(|e| required($name, e))?
                };
            }
            macro_rules! optional {
                ($name:literal) => {
                    // SAFETY: as for `get!`.
                    unsafe { symbol(&library, concat!($name, "\0")) }.ok()
                };
            }
            Ok(SdtApi {
                path: path.to_path_buf(),
                open_port: get!("SDT_OpenPort"),
                close_port: get!("SDT_ClosePort"),
                sam_status: get!("SDT_GetSAMStatus"),
                reset_sam: optional!("SDT_ResetSAM"),
                sam_id: get!("SDT_GetSAMID"),
                find_card: get!("SDT_StartFindIDCard"),
                select_card: get!("SDT_SelectIDCard"),
                read_base: get!("SDT_ReadBaseMsg"),
                read_base_fp: optional!("SDT_ReadBaseFPMsg"),
                read_new_app: optional!("SDT_ReadNewAppMsg"),
                _library: library,
            })
        }

        /// The library's path.
        pub fn path(&self) -> &Path {
            &self.path
        }

        /// `SDT_OpenPort(port)`.
        pub fn open_port(&self, port: i32) -> i32 {
            // SAFETY: an int in, an int out, per the prototype.
            unsafe { (self.open_port)(port) }
        }

        /// `SDT_ClosePort(port)`.
        pub fn close_port(&self, port: i32) -> i32 {
            // SAFETY: an int in, an int out, per the prototype.
            unsafe { (self.close_port)(port) }
        }

        /// `SDT_GetSAMStatus(port, 0)`.
        pub fn sam_status(&self, port: i32) -> i32 {
            // SAFETY: ints in, an int out, per the prototype.
            unsafe { (self.sam_status)(port, 0) }
        }

        /// `SDT_ResetSAM(port, 0)`, if the library has it.
        pub fn reset_sam(&self, port: i32) -> Option<i32> {
            // SAFETY: ints in, an int out, per the prototype.
            self.reset_sam.map(|f| unsafe { f(port, 0) })
        }

        /// A call that fills one short buffer.
        fn short(&self, f: BufferFn, port: i32) -> (i32, [u8; SHORT_BUFFER_LEN]) {
            let mut buf = [0u8; SHORT_BUFFER_LEN];
            // SAFETY: the buffer is four times the largest documented output
            // of these functions (16 bytes) and lives across the call.
            let code = unsafe { f(port, buf.as_mut_ptr(), 0) };
            (code, buf)
        }

        /// `SDT_GetSAMID(port, buf, 0)`: the 16-byte SAM id.
        pub fn sam_id(&self, port: i32) -> (i32, [u8; 16]) {
            let (code, buf) = self.short(self.sam_id, port);
            let mut id = [0u8; 16];
            id.copy_from_slice(&buf[..16]);
            (code, id)
        }

        /// `SDT_StartFindIDCard(port, buf, 0)`: the card's management
        /// information (first 4 bytes).
        pub fn find_card(&self, port: i32) -> (i32, [u8; 4]) {
            let (code, buf) = self.short(self.find_card, port);
            (code, [buf[0], buf[1], buf[2], buf[3]])
        }

        /// `SDT_SelectIDCard(port, buf, 0)`: the card's serial (8 bytes).
        pub fn select_card(&self, port: i32) -> (i32, [u8; 8]) {
            let (code, buf) = self.short(self.select_card, port);
            let mut serial = [0u8; 8];
            serial.copy_from_slice(&buf[..8]);
            (code, serial)
        }

        /// `SDT_ReadBaseMsg`: text and photo.
        pub fn read_base(&self, port: i32) -> Result<(i32, CardParts), SdtapiError> {
            let mut text = Zeroizing::new(vec![0u8; READ_BUFFER_LEN]);
            let mut photo = Zeroizing::new(vec![0u8; READ_BUFFER_LEN]);
            let (mut text_len, mut photo_len): (c_uint, c_uint) = (0, 0);
            // SAFETY: each buffer holds READ_BUFFER_LEN bytes, four times its
            // documented output; the lengths are written through valid
            // pointers; all live across the call.
            let code = unsafe {
                (self.read_base)(
                    port,
                    text.as_mut_ptr(),
                    &mut text_len,
                    photo.as_mut_ptr(),
                    &mut photo_len,
                    0,
                )
            };
            Ok((
                code,
                CardParts {
                    text: filled("SDT_ReadBaseMsg", text, text_len)?,
                    photo: filled("SDT_ReadBaseMsg", photo, photo_len)?,
                    fingerprint: None,
                },
            ))
        }

        /// `SDT_ReadBaseFPMsg`: text, photo and fingerprint; `None` when the
        /// library has no such function.
        pub fn read_base_fingerprint(
            &self,
            port: i32,
        ) -> Option<Result<(i32, CardParts), SdtapiError>> {
            let f = self.read_base_fp?;
            let mut text = Zeroizing::new(vec![0u8; READ_BUFFER_LEN]);
            let mut photo = Zeroizing::new(vec![0u8; READ_BUFFER_LEN]);
            let mut fingerprint = Zeroizing::new(vec![0u8; READ_BUFFER_LEN]);
            let (mut text_len, mut photo_len, mut fp_len): (c_uint, c_uint, c_uint) = (0, 0, 0);
            // SAFETY: as for `read_base`, with a third buffer of the same size.
            let code = unsafe {
                f(
                    port,
                    text.as_mut_ptr(),
                    &mut text_len,
                    photo.as_mut_ptr(),
                    &mut photo_len,
                    fingerprint.as_mut_ptr(),
                    &mut fp_len,
                    0,
                )
            };
            let name = "SDT_ReadBaseFPMsg";
            Some((|| {
                Ok((
                    code,
                    CardParts {
                        text: filled(name, text, text_len)?,
                        photo: filled(name, photo, photo_len)?,
                        fingerprint: Some(filled(name, fingerprint, fp_len)?),
                    },
                ))
            })())
        }

        /// `SDT_ReadNewAppMsg`: the appended address block; `None` when the
        /// library has no such function.
        pub fn read_appended_address(
            &self,
            port: i32,
        ) -> Option<Result<(i32, SecretBytes), SdtapiError>> {
            let f = self.read_new_app?;
            let mut block = Zeroizing::new(vec![0u8; READ_BUFFER_LEN]);
            let mut len: c_uint = 0;
            // SAFETY: the buffer holds READ_BUFFER_LEN bytes (the documented
            // output is 70); the length is written through a valid pointer.
            let code = unsafe { f(port, block.as_mut_ptr(), &mut len, 0) };
            Some(filled("SDT_ReadNewAppMsg", block, len).map(|block| (code, block)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_a_load_error() {
        let err = SdtApi::load(Path::new("/nonexistent/libsdtapi.so")).unwrap_err();
        assert!(matches!(err, SdtapiError::Load { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/libsdtapi.so"));
    }

    #[test]
    fn a_length_beyond_the_buffer_is_refused() {
        let buf = Zeroizing::new(vec![0u8; 8]);
        assert_eq!(filled("f", buf.clone(), 8).unwrap().len(), 8);
        assert!(matches!(
            filled("f", buf, 9),
            Err(SdtapiError::Overrun {
                len: 9,
                capacity: 8,
                ..
            })
        ));
    }
}
