//! A schema registry stand-in for the registry serdes' unit tests, which run
//! without services (the integration tests use a real registry, Karapace),
//! and the helpers those tests share.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex, PoisonError};

use super::registry::{SchemaRegistryClient, SchemaRegistryConfig};

/// What a test returns: `?` on any error fails it.
pub(super) type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The error of a call that should fail.
pub(super) fn failure<T: std::fmt::Debug, E>(result: Result<T, E>) -> E {
    match result {
        Ok(value) => panic!("expected an error, got {value:?}"),
        Err(e) => e,
    }
}

/// A client of `url` that does not retry: the tests look at single answers.
pub(super) fn client(url: &str) -> SchemaRegistryClient {
    let mut config = SchemaRegistryConfig::new(url);
    config.max_retries = 0;
    SchemaRegistryClient::new(config)
}

/// The first line of every request the stand-in got.
pub(super) type Requests = Arc<Mutex<Vec<String>>>;

/// Starts a stand-in: registrations get `register_id`; `GET /schemas/ids/N`
/// answers from `schemas` (id, type, text), else 404. Returns its URL and the
/// request lines it got.
pub(super) fn fake_registry(
    register_id: u32,
    schemas: Vec<(u32, &'static str, String)>,
) -> std::io::Result<(String, Requests)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    let requests = Requests::default();
    let seen = Arc::clone(&requests);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let request = read_request(&mut reader);
            seen.lock().unwrap_or_else(PoisonError::into_inner).push(request.trim().to_owned());
            let path = request.split_whitespace().nth(1).unwrap_or_default().to_owned();
            let found = path
                .strip_prefix("/schemas/ids/")
                .and_then(|id| id.split('?').next()?.parse::<u32>().ok())
                .and_then(|id| schemas.iter().find(|(i, _, _)| *i == id));
            let (status, answer) = if request.starts_with("POST") && path.ends_with("/versions") {
                ("200 OK", serde_json::json!({ "id": register_id }))
            } else if let Some((_, kind, text)) = found {
                ("200 OK", serde_json::json!({ "schema": text, "schemaType": kind }))
            } else {
                ("404 Not Found", serde_json::json!({ "error_code": 40403, "message": "Schema not found" }))
            };
            let answer = answer.to_string();
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    Ok((url, requests))
}

/// Reads one HTTP request (its body is read and dropped); returns its first line.
fn read_request(reader: &mut BufReader<std::net::TcpStream>) -> String {
    let mut request = String::new();
    let mut length = 0;
    let _ = reader.read_line(&mut request);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    request
}
