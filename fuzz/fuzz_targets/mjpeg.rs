//! Fuzz target over the `.mjpeg` movie parser: the incremental reader (chunked input, resync
//! after errors, end of stream), the frame index and JPEG SOF parsing, checking that the reader
//! and the index agree on an undamaged prefix.
//!
//! Input layout: byte 0 chooses the chunking of the stream fed to the reader; the rest is the
//! stream.

#![no_main]

use libfuzzer_sys::fuzz_target;

use dvb2ip_proto::mjpeg::{
    frame_at_time_ns, frame_time_ns, jpeg_info, FrameIndex, MjpegReader, HEADER_LEN,
};

fuzz_target!(|input: &[u8]| {
    let Some((&mode, data)) = input.split_first() else {
        return;
    };
    let chunk = usize::from(mode % 64) + 1;
    let max_len = if mode & 0x80 != 0 { 64 } else { 99_999 };

    let mut reader = MjpegReader::with_max_len(max_len);
    let mut frames = Vec::new();
    let mut failed = false;
    let mut drain = |reader: &mut MjpegReader, frames: &mut Vec<(u64, usize)>| {
        // Each call either returns a frame, an error that moves the position, or None.
        for _ in 0..=data.len() + 1 {
            match reader.next() {
                Ok(Some(f)) => {
                    assert!(f.jpeg.starts_with(&[0xFF, 0xD8]));
                    assert!(f.jpeg.len() <= max_len);
                    let _ = jpeg_info(&f.jpeg);
                    frames.push((f.offset, f.stream_len()));
                }
                Ok(None) => return,
                Err(e) => {
                    let _ = e.to_string();
                    assert!(e.offset() <= data.len() as u64);
                    failed = true;
                }
            }
        }
    };
    for c in data.chunks(chunk) {
        reader.push(c);
        drain(&mut reader, &mut frames);
    }
    reader.finish();
    drain(&mut reader, &mut frames);
    assert!(reader.position() <= data.len() as u64);

    match FrameIndex::from_bytes(data) {
        Ok(index) if max_len == 99_999 => {
            // An undamaged stream: the reader saw exactly the indexed frames.
            assert!(!failed);
            assert_eq!(index.len(), frames.len());
            for (n, &(offset, len)) in frames.iter().enumerate() {
                assert_eq!(index.offset(n), Some(offset));
                assert_eq!(index.frame_at(offset), Some(n));
                assert_eq!(index.frame_containing(offset + len as u64 - 1), Some(n));
                assert!(len > HEADER_LEN);
            }
            assert_eq!(index.end(), data.len() as u64);
        }
        Ok(_) | Err(_) => {}
    }

    let ns = input
        .iter()
        .take(8)
        .fold(0u64, |a, &b| a << 8 | u64::from(b));
    let (num, den) = (u32::from(mode) + 1, u32::from(mode % 7) + 1);
    let n = frame_at_time_ns(ns, num, den);
    assert!(frame_time_ns(n, num, den) <= ns);
});
