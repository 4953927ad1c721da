//! The extended M3U channel list (§7.2).

/// The extended M3U channel list: `#EXTM3U`, then per channel `#EXTINF:0,<number>. <name>` and
/// the URL, CRLF line ends. Line breaks inside names or URLs become spaces. Serve it with
/// [`to_latin1`] (the spec calls the list Latin-1).
pub fn m3u_playlist<'a, I>(entries: I) -> String
where
    I: IntoIterator<Item = (u32, &'a str, &'a str)>,
{
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
            .collect()
    };
    let mut out = String::from("#EXTM3U\r\n");
    for (number, name, url) in entries {
        out.push_str(&format!(
            "#EXTINF:0,{number}. {}\r\n{}\r\n",
            clean(name),
            clean(url)
        ));
    }
    out
}

/// Latin-1 bytes of `s`; characters outside Latin-1 become `?`.
pub fn to_latin1(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn m3u_spec_example() {
        let list = m3u_playlist([
            (1, "Example One HD", "rtsp://10.0.0.5/?src=1&freq=11494&pol=h&msys=dvbs2&mtype=8psk&sr=22000&fec=23&pids=0,5100,5101,5102"),
            (2, "Example Radio", "rtsp://10.0.0.5/?src=1&freq=12603&pol=h&msys=dvbs&mtype=qpsk&sr=22000&fec=56&pids=0,6300"),
            (3, "Multicast Channel", "rtp://239.3.0.12:5004"),
        ]);
        let expected = "#EXTM3U\r\n\
#EXTINF:0,1. Example One HD\r\n\
rtsp://10.0.0.5/?src=1&freq=11494&pol=h&msys=dvbs2&mtype=8psk&sr=22000&fec=23&pids=0,5100,5101,5102\r\n\
#EXTINF:0,2. Example Radio\r\n\
rtsp://10.0.0.5/?src=1&freq=12603&pol=h&msys=dvbs&mtype=qpsk&sr=22000&fec=56&pids=0,6300\r\n\
#EXTINF:0,3. Multicast Channel\r\n\
rtp://239.3.0.12:5004\r\n";
        assert_eq!(list, expected);
        assert_eq!(
            m3u_playlist([(4, "Bad\r\nName", "u")]),
            "#EXTM3U\r\n#EXTINF:0,4. Bad  Name\r\nu\r\n"
        );
        assert_eq!(to_latin1("Télé 5 ☺"), b"T\xe9l\xe9 5 ?".to_vec());
    }
}
