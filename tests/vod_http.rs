//! HTTP files on demand (`src/vod/http.rs`) with curl, the real client, on 127.0.0.1: byte
//! ranges compared with the file, HEAD, 416, the library as HTML and M3U, and every path
//! traversal form answered exactly like a missing file.
//!
//! Each test runs the VOD routes of a core of its own over a library in a temporary folder.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use dvb2ip::config::Config;
use dvb2ip::core::Core;
use gstdvb2ip::tuners::Pool;

/// The RTSP port the M3U names (the routes are served without an RTSP server here).
const RTSP_PORT: u16 = 8554;

/// A library: root `a` with files, root `b`, a folder `outside` beside them.
struct Library {
    dir: PathBuf,
    roots: Vec<PathBuf>,
}

/// Deterministic bytes that differ at every offset of interest.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

const UNICODE_NAME: &str = "Süß film (1) & more.ts";

fn library(tag: &str) -> Library {
    let dir = common::temp_dir(&format!("vod-http-{tag}"));
    let (a, b, out) = (dir.join("a"), dir.join("b"), dir.join("outside"));
    for d in [&a.join("sub dir"), &b, &out] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::copy(
        common::repo_file("../shared/media/temi_a_single_timeline.ts"),
        a.join("movie.ts"),
    )
    .expect("test media (../shared/media)");
    std::fs::write(a.join("data.mp4"), pattern(300_000, 1)).unwrap();
    std::fs::write(a.join(UNICODE_NAME), pattern(70_000, 2)).unwrap();
    std::fs::write(a.join("sub dir/clip.mkv"), pattern(1000, 3)).unwrap();
    std::fs::write(a.join("empty.mp3"), b"").unwrap();
    std::fs::write(b.join("song.mp3"), pattern(5000, 4)).unwrap();
    std::fs::write(b.join("lecture.mjpeg"), pattern(4000, 5)).unwrap();
    std::fs::write(out.join("secret.ts"), b"secret outside the roots").unwrap();
    std::os::unix::fs::symlink(out.join("secret.ts"), a.join("escape.ts")).unwrap();
    std::os::unix::fs::symlink(&out, a.join("outdir")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", a.join("passwd")).unwrap();
    Library {
        roots: vec![a, b],
        dir,
    }
}

struct Http {
    port: u16,
    _server: dvb2ip::http::server::HttpServer,
    _rt: tokio::runtime::Runtime,
}

fn serve(roots: &[PathBuf]) -> Http {
    let mut cfg = Config::embedded();
    cfg.vod.roots = roots.to_vec();
    let pool = Pool::new(cfg.broadcast.clone());
    let core = Core::new(cfg, pool);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = dvb2ip::http::server::spawn(
        &rt,
        "127.0.0.1".parse().unwrap(),
        0,
        dvb2ip::vod::http::router(&core, RTSP_PORT),
    )
    .expect("http");
    Http {
        port: server.port,
        _server: server,
        _rt: rt,
    }
}

/// One curl request: (status, headers in lower case, body).
struct Answer {
    status: u32,
    headers: String,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim().to_string())
        })
    }
}

fn curl(h: &Http, path: &str, args: &[&str]) -> Answer {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = common::temp_dir(&format!("vod-curl-{n}"));
    let out = Command::new("curl")
        .args(["-s", "--path-as-is", "--max-time", "60", "-D"])
        .arg(dir.join("headers"))
        .arg("-o")
        .arg(dir.join("body"))
        .args(args)
        .arg(format!("http://127.0.0.1:{}{path}", h.port))
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "curl {path}: {out:?}");
    let headers = std::fs::read_to_string(dir.join("headers"))
        .unwrap_or_default()
        .to_ascii_lowercase();
    let status = headers
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = std::fs::read(dir.join("body")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    Answer {
        status,
        headers,
        body,
    }
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

#[test]
fn ranges_return_the_right_bytes() {
    let lib = library("ranges");
    let h = serve(&lib.roots);
    let file = read(&lib.roots[0].join("data.mp4"));
    let size = file.len();

    let full = curl(&h, "/vod/data.mp4", &[]);
    assert_eq!(full.status, 200, "{}", full.headers);
    assert_eq!(full.body, file);
    assert_eq!(full.header("accept-ranges").as_deref(), Some("bytes"));
    assert_eq!(full.header("content-type").as_deref(), Some("video/mp4"));
    assert_eq!(full.header("content-length"), Some(size.to_string()));

    for (range, start, end) in [
        ("0-0", 0, 0),
        ("100-199", 100, 199),
        ("65530-131080", 65530, 131_080),
        ("299990-", 299_990, size - 1),
        ("-1000", size - 1000, size - 1),
        ("250000-999999999", 250_000, size - 1),
        ("-999999999", 0, size - 1),
    ] {
        let a = curl(&h, "/vod/data.mp4", &["-r", range]);
        assert_eq!(a.status, 206, "{range}: {}", a.headers);
        assert_eq!(
            a.header("content-range"),
            Some(format!("bytes {start}-{end}/{size}")),
            "{range}"
        );
        assert_eq!(
            a.header("content-length"),
            Some((end - start + 1).to_string())
        );
        assert_eq!(a.header("accept-ranges").as_deref(), Some("bytes"));
        assert!(a.body == file[start..=end], "{range}: wrong bytes");
    }

    // Unsatisfiable: 416 with the size.
    for range in [format!("{size}-"), "999999999-".into(), "-0".into()] {
        let a = curl(&h, "/vod/data.mp4", &["-r", &range]);
        assert_eq!(a.status, 416, "{range}: {}", a.headers);
        assert_eq!(a.header("content-range"), Some(format!("bytes */{size}")));
    }
    // Several ranges: the whole file (documented), and so for a range we cannot read.
    for range in ["0-1,5-6", "5-2"] {
        let a = curl(&h, "/vod/data.mp4", &["-r", range]);
        assert_eq!(a.status, 200, "{range}: {}", a.headers);
        assert!(a.body == file, "{range}");
    }
    // A real player's seek: the TS from an offset, a whole number of packets.
    let ts = read(&lib.roots[0].join("movie.ts"));
    let a = curl(&h, "/vod/movie.ts", &["-r", "188000-"]);
    assert_eq!(a.status, 206);
    assert_eq!(a.header("content-type").as_deref(), Some("video/mp2t"));
    assert!(a.body == ts[188_000..] && a.body[0] == 0x47);
    // The file of size 0: 200 with nothing, a range on it 416.
    let a = curl(&h, "/vod/empty.mp3", &[]);
    assert_eq!((a.status, a.body.len()), (200, 0), "{}", a.headers);
    assert_eq!(curl(&h, "/vod/empty.mp3", &["-r", "0-"]).status, 416);
    let _ = std::fs::remove_dir_all(&lib.dir);
}

#[test]
fn head_types_and_odd_names() {
    let lib = library("head");
    let h = serve(&lib.roots);
    let a = curl(&h, "/vod/data.mp4", &["-I"]);
    assert_eq!(a.status, 200, "{}", a.headers);
    assert_eq!(a.header("content-length").as_deref(), Some("300000"));
    assert_eq!(a.header("accept-ranges").as_deref(), Some("bytes"));
    // curl -I writes the headers where the body would go: nothing else came.
    assert_eq!(a.body.to_ascii_lowercase(), a.headers.as_bytes());
    let a = curl(&h, "/vod/data.mp4", &["-I", "-r", "10-19"]);
    assert_eq!(a.status, 206, "{}", a.headers);
    assert_eq!(
        a.header("content-range").as_deref(),
        Some("bytes 10-19/300000")
    );
    assert_eq!(a.header("content-length").as_deref(), Some("10"));

    for (path, ctype) in [
        ("/vod/movie.ts", "video/mp2t"),
        ("/vod/sub%20dir/clip.mkv", "video/x-matroska"),
        ("/vod/song.mp3", "audio/mpeg"),
        ("/vod/lecture.mjpeg", "application/octet-stream"),
    ] {
        let a = curl(&h, path, &["-I"]);
        assert_eq!(a.status, 200, "{path}: {}", a.headers);
        assert_eq!(a.header("content-type").as_deref(), Some(ctype), "{path}");
    }
    // Spaces, non-ASCII, '&' and parentheses, percent-encoded as the listing links them.
    let want = read(&lib.roots[0].join(UNICODE_NAME));
    let a = curl(
        &h,
        "/vod/S%C3%BC%C3%9F%20film%20%281%29%20%26%20more.ts",
        &["-r", "1000-1999"],
    );
    assert_eq!(a.status, 206, "{}", a.headers);
    assert!(a.body == want[1000..2000]);
    // The second root's file.
    assert!(curl(&h, "/vod/song.mp3", &[]).body == read(&lib.roots[1].join("song.mp3")));
    let _ = std::fs::remove_dir_all(&lib.dir);
}

#[test]
fn every_traversal_form_is_answered_like_a_missing_file() {
    let lib = library("traversal");
    let h = serve(&lib.roots);
    let missing = curl(&h, "/vod/no-such-file.ts", &[]);
    assert_eq!(missing.status, 404, "{}", missing.headers);
    assert!(!missing.body.is_empty());
    let ctype = missing.header("content-type");
    for path in [
        "/vod/../outside/secret.ts",
        "/vod/../../../../etc/passwd",
        "/vod/sub%20dir/../../outside/secret.ts",
        "/vod/%2e%2e/outside/secret.ts",
        "/vod/%2E%2E/%2E%2E/%2E%2E/etc/passwd",
        "/vod/.%2e/outside/secret.ts",
        "/vod/%2e%2e%2foutside%2fsecret.ts",
        "/vod/..%2f..%2f..%2fetc%2fpasswd",
        "/vod/%252e%252e/outside/secret.ts",
        "/vod/%252e%252e%252foutside%252fsecret.ts",
        "/vod/%c0%ae%c0%ae/outside/secret.ts",
        "/vod//etc/passwd",
        "/vod/%2fetc%2fpasswd",
        "/vod/%2Fetc/passwd",
        "/vod/%252fetc%252fpasswd",
        "/vod/data.mp4%00",
        "/vod/data.mp4%00.ts",
        "/vod/%00",
        "/vod/..%5c..%5cetc%5cpasswd",
        "/vod/escape.ts",
        "/vod/outdir/secret.ts",
        "/vod/passwd",
        "/vod/sub%20dir",
        "/vod/sub%20dir/",
        "/vod/./data.mp4",
        "/vod/%2e/data.mp4",
        "/vod/data.mp4%",
        "/vod/data.mp4%zz",
    ] {
        for args in [&[][..], &["-r", "0-9"][..]] {
            let a = curl(&h, path, args);
            assert_eq!(
                (a.status, &a.body, a.header("content-type")),
                (404, &missing.body, ctype.clone()),
                "{path} {args:?} must be answered like a missing file: {}",
                a.headers
            );
        }
    }
    let _ = std::fs::remove_dir_all(&lib.dir);
}

#[test]
fn library_as_html_and_m3u() {
    let lib = library("listing");
    let h = serve(&lib.roots);
    let a = curl(&h, "/vod/", &[]);
    assert_eq!(a.status, 200, "{}", a.headers);
    assert!(a.header("content-type").unwrap().starts_with("text/html"));
    let html = String::from_utf8(a.body).unwrap();
    // Escaped names, percent-encoded links, sorted; nothing outside the roots, no folders.
    let names = [
        "data.mp4",
        "empty.mp3",
        "lecture.mjpeg",
        "movie.ts",
        "song.mp3",
        "sub dir/clip.mkv",
        "Süß film (1) &amp; more.ts",
    ];
    let mut last = 0;
    for n in names {
        let at = html
            .find(&format!(">{n}</a>"))
            .unwrap_or_else(|| panic!("{n} not listed: {html}"));
        assert!(at > last, "{n} out of order: {html}");
        last = at;
    }
    assert!(html.contains("href=\"/vod/S%C3%BC%C3%9F%20film%20%281%29%20%26%20more.ts\""));
    assert!(html.contains("href=\"/vod/sub%20dir/clip.mkv\""));
    for hidden in ["secret", "passwd", "escape.ts", "outdir"] {
        assert!(!html.contains(hidden), "{hidden} listed: {html}");
    }

    let a = curl(&h, "/vod/?format=m3u", &[]);
    assert_eq!(a.status, 200, "{}", a.headers);
    assert!(a
        .header("content-type")
        .unwrap()
        .starts_with("audio/x-mpegurl"));
    let m3u = String::from_utf8(a.body).unwrap();
    assert_eq!(curl(&h, "/vod.m3u", &[]).body, m3u.as_bytes());
    assert!(m3u.starts_with("#EXTM3U\n"), "{m3u}");
    let urls: Vec<&str> = m3u.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(urls.len(), 2 * names.len(), "{m3u}");
    let enc = "S%C3%BC%C3%9F%20film%20%281%29%20%26%20more.ts";
    assert!(urls.contains(&format!("rtsp://127.0.0.1:{RTSP_PORT}/vod/{enc}").as_str()));
    let http_url = format!("http://127.0.0.1:{}/vod/{enc}", h.port);
    assert!(urls.contains(&http_url.as_str()), "{m3u}");
    // Every HTTP URL of the list serves its file.
    for u in urls.iter().filter(|u| u.starts_with("http://")) {
        let path = &u[u.find("/vod/").unwrap()..];
        let a = curl(&h, path, &["-I"]);
        assert_eq!(a.status, 200, "{u}");
    }
    assert_eq!(
        curl(
            &h,
            "/vod/S%C3%BC%C3%9F%20film%20%281%29%20%26%20more.ts",
            &[]
        )
        .body,
        read(&lib.roots[0].join(UNICODE_NAME))
    );
    // /vod redirects to the listing.
    let a = curl(&h, "/vod", &["-L"]);
    assert_eq!(a.status, 308, "{}", a.headers);
    let _ = std::fs::remove_dir_all(&lib.dir);
}

#[test]
fn without_roots_vod_is_off_and_answers_404() {
    let h = serve(&[]);
    let missing = curl(&h, "/vod/x.ts", &[]);
    assert_eq!(missing.status, 404);
    assert_eq!(curl(&h, "/vod/../etc/passwd", &[]).body, missing.body);
    let a = curl(&h, "/vod/?format=m3u", &[]);
    assert_eq!((a.status, a.body.as_slice()), (200, &b"#EXTM3U\n"[..]));
}

/// The 60 s H.264 + AAC clock movie of tests/vod_rtsp.rs (1 s GOP at 25 fps, luma 4·t), from
/// the shared cache (`$DVB2IP_CACHE_DIR/vod/clock60.ts`), made there with the same ffmpeg
/// recipe when it is missing.
fn clock_movie() -> PathBuf {
    let cache = std::env::var_os("DVB2IP_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("dvb2ip-cache"))
        .join("vod");
    std::fs::create_dir_all(&cache).unwrap();
    let path = cache.join("clock60.ts");
    if !path.exists() {
        let tmp = cache.join(format!(".clock60.ts.http.{}", std::process::id()));
        let video = "nullsrc=s=160x120:r=25:d=60,geq=lum='4*T':cb=128:cr=128,format=yuv420p";
        let audio = "sine=frequency=440:sample_rate=48000:duration=60";
        let out = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i"])
            .arg(video)
            .args(["-f", "lavfi", "-i", audio])
            .args("-c:v libx264 -preset ultrafast -g 25 -keyint_min 25 -sc_threshold 0 -bf 0 -c:a aac -b:a 64k -f mpegts".split(' '))
            .arg(&tmp)
            .output()
            .expect("ffmpeg runs");
        assert!(out.status.success(), "ffmpeg: {out:?}");
        std::fs::rename(&tmp, &path).unwrap();
    }
    path
}

/// ffprobe of `file`'s first video frame: (its PTS in seconds, its mean luma).
fn first_frame(file: &Path) -> (f64, f64) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-f", "lavfi", "-i"])
        .arg(format!("movie={},signalstats", file.display()))
        .args([
            "-show_entries",
            "frame=pts_time:frame_tags=lavfi.signalstats.YAVG",
            "-of",
            "csv=p=0",
            "-read_intervals",
            "%+#1",
        ])
        .output()
        .expect("ffprobe runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut f = text.lines().next().unwrap_or_default().split(',');
    let mut next = || f.next().and_then(|v| v.trim().parse::<f64>().ok());
    match (next(), next()) {
        (Some(pts), Some(luma)) => (pts, luma),
        _ => panic!("no video frame in {}: {text} {out:?}", file.display()),
    }
}

/// Issue 13's `cvlc --start-time` on a file served over HTTP with byte ranges: VLC (as
/// `nobody`, as tests/satip_rtsp.rs runs it) copies what it reads from 30 s on to a file with
/// `--sout` (no transcoding); the first picture of that copy is within one GOP of 30 s into the
/// movie. Debian 12's VLC has no live555, so `rtsp://` VOD is not an option for it.
///
/// VLC's own TS demuxer cannot start at a time over HTTP from any server: it learns a TS
/// file's first and last PCR only from an access that can "fast seek", which VLC's HTTP access
/// never claims (local files do), and without them its `SET_TIME` fails ("INPUT_CONTROL_SET_TIME
/// failed or not possible") and the file plays from 0. Our range answers are not the cause
/// (VLC's `Range: bytes=0-` gets `206` with `Content-Range: bytes 0-N/size`). libavformat's
/// demuxer, in VLC's `vlc-plugin-base`, seeks through the ranges: `--demux avformat`.
///
/// VLC's TS muxer stamps the copy from its own start, so the copy's PTS do not say where it
/// started; the movie's pictures do: each one's luma is 4·t (t its second in the movie), so the
/// copy's first picture shows where VLC started, to a quarter second (one luma step).
#[test]
fn cvlc_starts_a_ts_at_its_start_time_over_http() {
    assert!(
        Command::new("cvlc").arg("--version").output().is_ok(),
        "cvlc not found: install the test dependencies (scripts/deps.sh TEST_PACKAGES, \
         e.g. `apt-get install vlc-bin vlc-plugin-base`) or run scripts/test.sh"
    );
    let dir = common::temp_dir("vod-http-cvlc");
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::copy(clock_movie(), root.join("clock.ts")).unwrap();
    let h = serve(&[root]);
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let _ = Command::new("chmod").arg("777").arg(&home).status();
    let copy = home.join("copy.ts");
    const START_S: f64 = 30.0;
    /// The movie's GOP.
    const GOP_S: f64 = 1.0;
    /// One luma step of the clock movie, in seconds.
    const LUMA_STEP_S: f64 = 0.25;
    let url = format!("http://127.0.0.1:{}/vod/clock.ts", h.port);
    let out = Command::new("timeout")
        .args(["120", "runuser", "-u", "nobody", "--", "env"])
        .arg(format!("HOME={}", home.display()))
        .args([
            "cvlc",
            "--no-dbus",
            "--intf",
            "dummy",
            "--demux",
            "avformat",
            "--start-time",
            &START_S.to_string(),
            "--run-time",
            "4",
            "--play-and-exit",
            &url,
            "--sout",
            &format!("#std{{access=file,mux=ts,dst={}}}", copy.display()),
        ])
        .output()
        .expect("cvlc runs");
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let size = std::fs::metadata(&copy).map_or(0, |m| m.len());
    assert!(size > 10 * 188, "cvlc wrote {size} bytes: {text}");
    let (pts, luma) = first_frame(&copy);
    let at = luma / 4.0;
    eprintln!("cvlc --start-time {START_S}: copy of {size} bytes, first picture at {at:.2} s of the movie (luma {luma:.1}, PTS {pts:.3} s in the copy)");
    assert!(
        (at - START_S).abs() <= GOP_S + LUMA_STEP_S,
        "the copy starts at {at:.2} s of the movie, not within one GOP of {START_S} s: {text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
