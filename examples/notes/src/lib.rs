//! A notes API: notes are documents (queried by tag, sorted by date), attachments are
//! files. Routes (bind them with `picloud deploy … --route`):
//!
//! - `POST /notes` `{"title", "text", "tags": [..]}` → `201 {"id"}`
//! - `GET /notes?tag=work&limit=10` → the newest notes, optionally with a tag
//! - `GET /notes/:id` → the note, or 404
//! - `PUT /notes/:id/attachment` (any body and content type) → the file's metadata
//! - `GET /notes/:id/attachment` → the attachment, with its content type
//! - `DELETE /notes/:id` → 204; removes the attachment too

use picloud_sdk::docs::{self, Find};
use picloud_sdk::{Error, Request, Response, Result, files, runtime};
use serde::{Deserialize, Serialize};
use serde_json::json;

picloud_sdk::handler!(handle);

const NOTES: &str = "notes";

#[derive(Serialize, Deserialize)]
struct Note {
    title: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    created: u64,
}

fn attachment_path(id: &str) -> String {
    format!("attachments/{id}")
}

fn not_found() -> Result<Response> {
    Response::json(&json!({"error": "no such note"})).map(|r| r.with_status(404))
}

fn handle(request: Request) -> Result<Response> {
    let id = request.param("id").map(str::to_owned);
    let attachment = request.path.ends_with("/attachment");
    match (request.method.as_str(), id, attachment) {
        ("POST", None, _) => {
            let mut note: Note = request.json()?;
            if note.title.trim().is_empty() {
                return Response::json(&json!({"error": "a note needs a title"}))
                    .map(|r| r.with_status(400));
            }
            note.created = runtime::now_ms();
            let id = docs::insert(NOTES, &note)?;
            Response::json(&json!({ "id": id })).map(|r| r.with_status(201))
        }
        ("GET", None, _) => {
            let limit = request
                .query_param("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(20);
            let query = match request.query_param("tag") {
                Some(tag) => json!({ "tags": { "$contains": tag } }),
                None => json!({}),
            };
            let notes: Vec<docs::Document<Note>> =
                docs::find(NOTES, &query, Find::new().sort("-created").limit(limit))?;
            let total = docs::count(NOTES, &query)?;
            let notes: Vec<_> = notes
                .into_iter()
                .map(|d| json!({"id": d.id, "title": d.body.title, "tags": d.body.tags}))
                .collect();
            Response::json(&json!({ "notes": notes, "total": total }))
        }
        ("GET", Some(id), false) => match docs::get::<Note>(NOTES, &id)? {
            Some(note) => Response::json(&note),
            None => not_found(),
        },
        ("PUT", Some(id), true) => {
            if docs::get::<serde_json::Value>(NOTES, &id)?.is_none() {
                return not_found();
            }
            let content_type = request
                .header("content-type")
                .unwrap_or("application/octet-stream")
                .to_owned();
            let stat = files::put(&attachment_path(&id), &request.body, &content_type)?;
            Response::json(&json!({"path": stat.path, "size": stat.size, "sha256": stat.sha256}))
        }
        ("GET", Some(id), true) => match files::get(&attachment_path(&id))? {
            Some((stat, bytes)) => Ok(Response::new(200)
                .with_header("content-type", &stat.content_type)
                .with_body(bytes)),
            None => not_found(),
        },
        ("DELETE", Some(id), false) => {
            if !docs::delete(NOTES, &id)? {
                return not_found();
            }
            files::delete(&attachment_path(&id))?;
            Ok(Response::new(204))
        }
        _ => Err(Error::Invalid(format!(
            "no handler for {} {}",
            request.method, request.path
        ))),
    }
}
