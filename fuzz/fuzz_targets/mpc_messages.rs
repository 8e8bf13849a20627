//! Fuzzes what an MPC party reads from a peer: length-prefixed frames off
//! the stream, then ring elements of the size the protocol expects (the
//! first two bytes pick the element count). Any input must give Ok or a
//! typed error, never a panic or an allocation beyond the frame limit.
#![no_main]
use cipherflow_mpc::z2k::from_bytes;
use cipherflow_mpc::transport::read_frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut r = std::io::Cursor::new(data);
    while let Ok(Some(frame)) = read_frame(&mut r, 1 << 16) {
        let n = frame.len() / 8;
        let _ = from_bytes::<u64>(&frame, n, 1);
        let _ = from_bytes::<u128>(&frame, frame.len() / 16, 1);
    }
    if data.len() >= 2 {
        let n = usize::from(u16::from_le_bytes([data[0], data[1]]));
        let _ = from_bytes::<u64>(&data[2..], n, 2);
        let _ = from_bytes::<u128>(&data[2..], n, 2);
    }
});
