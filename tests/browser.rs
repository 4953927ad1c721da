//! The server's pages in a real browser (headless Chromium over WebDriver): they load without
//! console errors. Screenshots land in `target/<profile>/screenshots/`.

mod common;

use std::time::Duration;

use common::browser::Browser;
use common::serve_child::{free_port, ServeChild};

/// The embedded configuration without SSDP, HTTP on `http_port`.
fn config(http_port: u16) -> String {
    let text = gstdvb2ip::tuners::config::DEFAULT_CONFIG;
    let ssdp = text.find("[ssdp]").expect("[ssdp]");
    format!(
        "{}{}",
        &text[..ssdp],
        text[ssdp..].replacen("enabled = true", "enabled = false", 1)
    )
    .replacen("http_port = 8875", &format!("http_port = {http_port}"), 1)
}

#[test]
fn the_start_page_loads_in_chromium_without_console_errors() {
    let dir = common::temp_dir("browser");
    let http_port = free_port();
    let conf = dir.join("serve.toml");
    std::fs::write(&conf, config(http_port)).unwrap();
    let _srv = ServeChild::start(&conf, &[]);
    let b = Browser::start();
    b.goto(&format!("http://127.0.0.1:{http_port}/"));
    b.wait_for(
        "document.readyState === 'complete'",
        Duration::from_secs(30),
    );
    let title = b.eval("document.title");
    assert!(title.as_str().is_some_and(|t| !t.is_empty()), "{title}");
    b.screenshot("start-page");
    let errors = b.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
