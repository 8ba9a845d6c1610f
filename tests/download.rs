//! `constnet download` and `train`'s download of missing data, against an HTTP server this
//! test runs on 127.0.0.1 (no test touches the internet): good files, a corrupted file, a
//! transfer cut in the middle (resumed with a Range request), a 404 before a good mirror.
//! `$CONSTNET_MIRROR` points the binary at the server and `$CONSTNET_MIRROR_SHA256SUMS` gives
//! the digests of the files it serves.
#![cfg(feature = "download")]

mod common;

use common::*;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

const NAMES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];

/// The requests a server saw: "MODE/NAME" and the Range header, if any.
type Requests = Vec<(String, Option<String>)>;

/// A one-thread HTTP/1.1 server. Paths are `/MODE/NAME`: `good` serves the file (and byte
/// ranges of it), `bad` the file with one byte changed, `cut` the first request for each file
/// only half-sent under a full Content-Length (later ones like `good`), `missing` a 404.
struct Server {
    base: String,
    /// Every request: "MODE/NAME" and its Range header, if any.
    log: Arc<Mutex<Requests>>,
}

impl Server {
    fn start(files: HashMap<String, Vec<u8>>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut cut_done = std::collections::HashSet::new();
            for stream in listener.incoming().flatten() {
                let _ = handle(stream, &files, &requests, &mut cut_done);
            }
        });
        Server { base, log }
    }

    fn url(&self, mode: &str) -> String {
        format!("{}/{mode}", self.base)
    }

    fn requests(&self) -> Requests {
        self.log.lock().unwrap().clone()
    }
}

fn handle(
    mut stream: TcpStream,
    files: &HashMap<String, Vec<u8>>,
    log: &Mutex<Requests>,
    cut_done: &mut std::collections::HashSet<String>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("range")
        {
            range = Some(v.trim().to_string());
        }
    }
    let path = path.trim_start_matches('/').to_string();
    log.lock().unwrap().push((path.clone(), range.clone()));
    let (mode, name) = path.split_once('/').unwrap_or(("", ""));
    let Some(file) = files.get(name).filter(|_| mode != "missing") else {
        return stream.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    };
    let mut body = file.clone();
    if mode == "bad" {
        let middle = body.len() / 2;
        body[middle] ^= 0x55;
    }
    if mode == "cut" && cut_done.insert(name.to_string()) {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes())?;
        return stream.write_all(&body[..body.len() / 2]);
    }
    let start = range.as_deref().and_then(|r| {
        r.strip_prefix("bytes=")?
            .strip_suffix('-')?
            .parse::<usize>()
            .ok()
    });
    let head = match start {
        Some(s) if s < body.len() => format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {s}-{}/{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len() - 1,
            body.len(),
            body.len() - s
        ),
        Some(_) => {
            return stream.write_all(
                b"HTTP/1.1 416 Range Not Satisfiable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
        None => format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ),
    };
    stream.write_all(head.as_bytes())?;
    stream.write_all(&body[start.unwrap_or(0)..])
}

/// The four `.gz` files of a small synthetic dataset, and a sha256sum file for them.
fn synthetic(tmp: &TempDir) -> (HashMap<String, Vec<u8>>, std::path::PathBuf) {
    let raw = tmp.path("raw");
    fs::create_dir(&raw).unwrap();
    write_synthetic_mnist(&raw, 40, 20);
    gz_files(&raw, tmp)
}

/// Gzips the four raw files of `raw` and writes their digests to a sha256sum file.
fn gz_files(raw: &Path, tmp: &TempDir) -> (HashMap<String, Vec<u8>>, std::path::PathBuf) {
    let mut files = HashMap::new();
    let mut sums = String::new();
    for name in NAMES {
        let gz = gzip(&fs::read(raw.join(name.trim_end_matches(".gz"))).unwrap());
        let digest: String = Sha256::digest(&gz)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        sums.push_str(&format!("{digest}  {name}\n"));
        files.insert(name.to_string(), gz);
    }
    let sums_path = tmp.path("SHA256SUMS");
    fs::write(&sums_path, sums).unwrap();
    (files, sums_path)
}

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str], mirrors: &str, sums: &Path) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_constnet"))
        .args(args)
        .env("CONSTNET_MIRROR", mirrors)
        .env("CONSTNET_MIRROR_SHA256SUMS", sums)
        .env_remove("MNIST_DIR")
        .output()
        .unwrap();
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The directory holds exactly the four served files, byte for byte, and nothing else.
fn assert_complete(dir: &Path, files: &HashMap<String, Vec<u8>>) {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want: Vec<String> = NAMES.iter().map(|n| n.to_string()).collect();
    want.sort();
    assert_eq!(
        names,
        want,
        "leftovers or missing files in {}",
        dir.display()
    );
    for name in NAMES {
        assert!(
            fs::read(dir.join(name)).unwrap() == files[name],
            "{name} differs"
        );
    }
}

#[test]
fn downloads_verifies_and_then_keeps_the_files() {
    let tmp = TempDir::new("dl-good");
    let (files, sums) = synthetic(&tmp);
    let server = Server::start(files.clone());
    let dir = tmp.path("data");
    let d = dir.to_str().unwrap();
    let out = run(
        &["download", "mnist", "--dir", d],
        &server.url("good"),
        &sums,
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("MNIST is in"), "{}", out.stdout);
    assert_eq!(
        out.stderr.matches("SHA-256 verified").count(),
        4,
        "{}",
        out.stderr
    );
    assert_complete(&dir, &files);
    // A second run finds every file with its digest and asks the server nothing.
    let asked = server.requests().len();
    let again = run(&["download", "--dir", d], &server.url("good"), &sums);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_eq!(server.requests().len(), asked);
    // The files are what the reader takes.
    let eval = Command::new(env!("CARGO_BIN_EXE_constnet"))
        .args(["eval", "--model", "absent.safetensors", "--data", d])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&eval.stderr);
    assert!(stderr.contains("absent.safetensors"), "{stderr}");
}

#[test]
fn a_404_moves_on_to_the_next_mirror() {
    let tmp = TempDir::new("dl-404");
    let (files, sums) = synthetic(&tmp);
    let server = Server::start(files.clone());
    let dir = tmp.path("data");
    let mirrors = format!("{} {}", server.url("missing"), server.url("good"));
    let out = run(
        &["download", "--dir", dir.to_str().unwrap()],
        &mirrors,
        &sums,
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("HTTP status 404"), "{}", out.stderr);
    assert_complete(&dir, &files);
}

#[test]
fn a_corrupted_file_is_refused_and_left_nowhere() {
    let tmp = TempDir::new("dl-bad");
    let (files, sums) = synthetic(&tmp);
    let server = Server::start(files.clone());
    let dir = tmp.path("data");
    let d = dir.to_str().unwrap();
    let out = run(&["download", "--dir", d], &server.url("bad"), &sums);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.starts_with("constnet: error: ") || out.stderr.contains("constnet: error: ")
    );
    assert!(
        out.stderr.contains("train-images-idx3-ubyte.gz"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("SHA-256 mismatch"), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert_eq!(
        fs::read_dir(&dir).unwrap().count(),
        0,
        "a bad file was kept"
    );
    // A good mirror after the bad one: the right files.
    let mirrors = format!("{} {}", server.url("bad"), server.url("good"));
    let out = run(&["download", "--dir", d], &mirrors, &sums);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_complete(&dir, &files);
}

#[test]
fn a_cut_transfer_resumes_with_a_range_request() {
    let tmp = TempDir::new("dl-cut");
    let (files, sums) = synthetic(&tmp);
    let server = Server::start(files.clone());
    let dir = tmp.path("data");
    let out = run(
        &["download", "--dir", dir.to_str().unwrap()],
        &server.url("cut"),
        &sums,
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("resuming at byte"), "{}", out.stderr);
    assert_complete(&dir, &files);
    let name = "train-images-idx3-ubyte.gz";
    let half = files[name].len() / 2;
    let requests = server.requests();
    let asked: Vec<_> = requests
        .iter()
        .filter(|(p, _)| p.ends_with(name))
        .map(|(_, r)| r.clone())
        .collect();
    assert_eq!(
        asked,
        [None, Some(format!("bytes={half}-"))],
        "{requests:?}"
    );
}

#[test]
fn a_mirror_list_that_fails_says_where_and_why() {
    let tmp = TempDir::new("dl-none");
    let (files, sums) = synthetic(&tmp);
    let server = Server::start(files);
    let dir = tmp.path("data");
    let mirrors = format!("{} {}", server.url("missing"), server.url("bad"));
    let out = run(
        &["download", "--dir", dir.to_str().unwrap()],
        &mirrors,
        &sums,
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    for word in [
        "could not download it from any mirror",
        "HTTP status 404",
        "SHA-256 mismatch",
    ] {
        assert!(out.stderr.contains(word), "lacks {word:?}: {}", out.stderr);
    }
}

/// The "done": `train` on an empty directory downloads MNIST (the real files,
/// gzipped and served here), trains and saves.
#[test]
fn train_downloads_missing_data_then_trains() {
    let tmp = TempDir::new("dl-train");
    let (files, sums) = gz_files(&mnist_raw_dir(), &tmp);
    let server = Server::start(files);
    let dir = tmp.path("data");
    let model = tmp.path("m.safetensors");
    let out = run(
        &[
            "train",
            "--epochs",
            "1",
            "--data",
            dir.to_str().unwrap(),
            "--out",
            model.to_str().unwrap(),
        ],
        &server.url("good"),
        &sums,
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("downloading it"), "{}", out.stderr);
    assert!(out.stdout.contains("saved"), "{}", out.stdout);
    assert!(model.is_file());
    // --no-download refuses instead.
    let empty = tmp.path("empty");
    let out = run(
        &["train", "--no-download", "--data", empty.to_str().unwrap()],
        &server.url("good"),
        &sums,
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("MNIST files not found"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("constnet download"), "{}", out.stderr);
}

/// The real MNIST directory with the raw files (what `gz_files` compresses).
fn mnist_raw_dir() -> std::path::PathBuf {
    let dir = mnist_dir();
    assert!(
        dir.join("train-images-idx3-ubyte").is_file(),
        "this test gzips the raw MNIST files of {}",
        dir.display()
    );
    dir
}
