//! Thin safe wrapper over the few `GstRTSPMessage` calls the bindings do not expose (header
//! access by name, status, body), used to finish gst-rtsp-server's responses the SAT>IP way.

use std::ffi::{CStr, CString};

use gst_rtsp_server::gst_rtsp::ffi;

/// A borrowed RTSP message (request or response) owned by gst-rtsp-server.
pub(crate) struct Msg(*mut ffi::GstRTSPMessage);

impl Msg {
    /// # Safety
    /// `p` must point to a valid `GstRTSPMessage` that outlives the returned value and is not
    /// used concurrently.
    pub(crate) unsafe fn from_ptr(p: *mut ffi::GstRTSPMessage) -> Option<Msg> {
        (!p.is_null()).then_some(Msg(p))
    }

    pub(crate) fn as_ptr(&self) -> *mut ffi::GstRTSPMessage {
        self.0
    }

    /// The first value of header `name` (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        let name = CString::new(name).ok()?;
        let mut v: *mut std::ffi::c_char = std::ptr::null_mut();
        // SAFETY: valid message (constructor contract), NUL-terminated name, out pointer.
        let r =
            unsafe { ffi::gst_rtsp_message_get_header_by_name(self.0, name.as_ptr(), &mut v, 0) };
        if r != ffi::GST_RTSP_OK || v.is_null() {
            return None;
        }
        // SAFETY: gst returns a NUL-terminated string owned by the message.
        Some(unsafe { CStr::from_ptr(v) }.to_string_lossy().into_owned())
    }

    pub(crate) fn remove_header(&self, name: &str) {
        if let Ok(name) = CString::new(name) {
            // SAFETY: valid message and name; index -1 removes every occurrence.
            unsafe { ffi::gst_rtsp_message_remove_header_by_name(self.0, name.as_ptr(), -1) };
        }
    }

    pub(crate) fn add_header(&self, name: &str, value: &str) {
        if let (Ok(n), Ok(v)) = (CString::new(name), CString::new(value)) {
            // SAFETY: valid message; gst copies both strings.
            unsafe { ffi::gst_rtsp_message_add_header_by_name(self.0, n.as_ptr(), v.as_ptr()) };
        }
    }

    pub(crate) fn set_header(&self, name: &str, value: &str) {
        self.remove_header(name);
        self.add_header(name, value);
    }

    /// Status code of a response.
    pub(crate) fn status(&self) -> Option<u32> {
        let mut code: ffi::GstRTSPStatusCode = 0;
        let mut reason: *const std::ffi::c_char = std::ptr::null();
        let mut version: ffi::GstRTSPVersion = 0;
        // SAFETY: valid message, out pointers.
        let r = unsafe {
            ffi::gst_rtsp_message_parse_response(self.0, &mut code, &mut reason, &mut version)
        };
        (r == ffi::GST_RTSP_OK).then_some(code as u32)
    }

    /// Whether this request is RTSP/2.0 (SAT>IP is RTSP/1.0 only: 505).
    pub(crate) fn is_rtsp2(&self) -> bool {
        let mut method: ffi::GstRTSPMethod = 0;
        let mut uri: *const std::ffi::c_char = std::ptr::null();
        let mut version: ffi::GstRTSPVersion = 0;
        // SAFETY: valid message, out pointers.
        let r = unsafe {
            ffi::gst_rtsp_message_parse_request(self.0, &mut method, &mut uri, &mut version)
        };
        r == ffi::GST_RTSP_OK && version == ffi::GST_RTSP_VERSION_2_0
    }

    /// Method name and URI of a request.
    pub(crate) fn request_line(&self) -> Option<(ffi::GstRTSPMethod, String)> {
        let mut method: ffi::GstRTSPMethod = 0;
        let mut uri: *const std::ffi::c_char = std::ptr::null();
        let mut version: ffi::GstRTSPVersion = 0;
        // SAFETY: valid message, out pointers.
        let r = unsafe {
            ffi::gst_rtsp_message_parse_request(self.0, &mut method, &mut uri, &mut version)
        };
        if r != ffi::GST_RTSP_OK || uri.is_null() {
            return None;
        }
        // SAFETY: NUL-terminated string owned by the message.
        let uri = unsafe { CStr::from_ptr(uri) }
            .to_string_lossy()
            .into_owned();
        Some((method, uri))
    }

    /// A copy of the body.
    pub(crate) fn body(&self) -> Vec<u8> {
        let mut data: *mut u8 = std::ptr::null_mut();
        let mut size: u32 = 0;
        // SAFETY: valid message; the body stays owned by the message and is copied at once.
        unsafe {
            if ffi::gst_rtsp_message_get_body(self.0, &mut data, &mut size) != ffi::GST_RTSP_OK
                || data.is_null()
            {
                return Vec::new();
            }
            std::slice::from_raw_parts(data, size as usize).to_vec()
        }
    }

    pub(crate) fn set_body(&self, body: &[u8]) {
        // SAFETY: valid message; gst copies the data.
        unsafe { ffi::gst_rtsp_message_set_body(self.0, body.as_ptr(), body.len() as u32) };
    }

    /// Turns this message into a fresh response to `request` (CSeq and Session copied from it).
    pub(crate) fn reset_response(&self, code: u32, reason: &str, request: Option<&Msg>) {
        let reason = CString::new(reason).unwrap_or_default();
        // SAFETY: valid messages; gst copies the reason.
        unsafe {
            ffi::gst_rtsp_message_init_response(
                self.0,
                code as ffi::GstRTSPStatusCode,
                reason.as_ptr(),
                request.map_or(std::ptr::null(), |r| r.0 as *const _),
            )
        };
    }
}

pub(crate) const METHOD_OPTIONS: ffi::GstRTSPMethod = ffi::GST_RTSP_OPTIONS;
pub(crate) const METHOD_DESCRIBE: ffi::GstRTSPMethod = ffi::GST_RTSP_DESCRIBE;
pub(crate) const METHOD_SETUP: ffi::GstRTSPMethod = ffi::GST_RTSP_SETUP;
pub(crate) const METHOD_PLAY: ffi::GstRTSPMethod = ffi::GST_RTSP_PLAY;
pub(crate) const METHOD_TEARDOWN: ffi::GstRTSPMethod = ffi::GST_RTSP_TEARDOWN;
pub(crate) const METHOD_PAUSE: ffi::GstRTSPMethod = ffi::GST_RTSP_PAUSE;
/// A method gst-rtsp-server does not know (`FOO rtsp://… RTSP/1.0`).
pub(crate) const METHOD_INVALID: ffi::GstRTSPMethod = ffi::GST_RTSP_INVALID;
pub(crate) const METHOD_ANNOUNCE: ffi::GstRTSPMethod = ffi::GST_RTSP_ANNOUNCE;
pub(crate) const METHOD_RECORD: ffi::GstRTSPMethod = ffi::GST_RTSP_RECORD;
