//! Verdicts for one response: the allowed statuses, the reserved error code,
//! the rules of error bodies and the OpenAPI schema of success bodies.

use serde_json::Value;

use super::http::Reply;
use super::poll::MAX_OPERATION_CHARS;
use super::report::Verdict;
use super::schema::{validate, BodySchema};

/// The operation a response belongs to, which decides the fields an error
/// body may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Update,
    Deprovision,
    Other,
}

/// Fails unless the status is one of `allowed`; then applies the error body
/// rules to a 4xx or 5xx response.
pub fn status(reply: &Reply, allowed: &[u16], operation: Operation) -> Verdict {
    if !allowed.contains(&reply.code()) {
        return Verdict::Fail(format!(
            "expected {}, got {}",
            list(allowed),
            reply.summary()
        ));
    }
    error_body(reply, operation)
}

/// Fails unless the response is `status` with this `error` code.
pub fn status_and_code(reply: &Reply, status: u16, code: &str, operation: Operation) -> Verdict {
    if reply.code() != status || reply.error_code() != Some(code) {
        return Verdict::Fail(format!("expected {status} {code}, got {}", reply.summary()));
    }
    error_body(reply, operation)
}

/// Joins statuses as `200, 201 or 202`.
pub fn list(statuses: &[u16]) -> String {
    let texts: Vec<String> = statuses.iter().map(u16::to_string).collect();
    match texts.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => "nothing".to_owned(),
    }
}

/// Checks an error body. These break a MUST: an empty `error` or
/// `description`, `instance_usable` outside update and deprovision errors,
/// and `update_repeatable` outside update errors. A body that is not a
/// JSON object, or an `error` that is not one CamelCase word, is a warning.
pub fn error_body(reply: &Reply, operation: Operation) -> Verdict {
    if reply.code() < 400 {
        return Verdict::Pass;
    }
    let Some(body) = reply.json.as_ref().filter(|body| body.is_object()) else {
        if reply.body.iter().all(u8::is_ascii_whitespace) {
            return Verdict::Pass;
        }
        return Verdict::Warn("the error body is not a JSON object".to_owned());
    };
    let mut problems = validate(BodySchema::Error, body);
    for field in ["error", "description"] {
        if body.get(field).and_then(Value::as_str) == Some("") {
            problems.push(format!("`{field}` is an empty string"));
        }
    }
    if body.get("instance_usable").is_some() && operation == Operation::Other {
        problems.push(
            "`instance_usable` in an error that is not from update or deprovision".to_owned(),
        );
    }
    if body.get("update_repeatable").is_some() && operation != Operation::Update {
        problems.push("`update_repeatable` in an error that is not from update".to_owned());
    }
    if !problems.is_empty() {
        return Verdict::fail_unless_empty(problems);
    }
    match body.get("error").and_then(Value::as_str) {
        Some(code) if !is_camel_case_word(code) => {
            Verdict::Warn(format!("the error code {code:?} is not one CamelCase word"))
        }
        _ => Verdict::Pass,
    }
}

fn is_camel_case_word(code: &str) -> bool {
    code.chars()
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic())
        && code.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Checks a success body: a JSON object that matches the schema, and
/// an `operation` of at most 10,000 characters when `limit_operation` is set.
pub fn success_body(reply: &Reply, schema: BodySchema, limit_operation: bool) -> Verdict {
    let Some(body) = reply.json.as_ref().filter(|body| body.is_object()) else {
        return Verdict::Fail(format!("the {} body is not a JSON object", reply.code()));
    };
    let mut problems = validate(schema, body);
    if let Some(operation) = body.get("operation").and_then(Value::as_str) {
        if limit_operation && operation.chars().count() > MAX_OPERATION_CHARS {
            problems.push(format!(
                "`operation` is longer than {MAX_OPERATION_CHARS} characters"
            ));
        }
    }
    Verdict::fail_unless_empty(problems)
}

/// Combines verdicts of one check: the first failure wins, then the first
/// warning, then the first skip.
pub fn combine(verdicts: impl IntoIterator<Item = Verdict>) -> Verdict {
    let mut warning = None;
    let mut skip = None;
    for verdict in verdicts {
        match verdict {
            Verdict::Fail(_) => return verdict,
            Verdict::Warn(_) if warning.is_none() => warning = Some(verdict),
            Verdict::Skip(_) if skip.is_none() => skip = Some(verdict),
            _ => {}
        }
    }
    warning.or(skip).unwrap_or(Verdict::Pass)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;
    use serde_json::json;

    fn reply(status: u16, body: Value) -> Reply {
        let bytes = body.to_string().into_bytes();
        Reply {
            status: Some(StatusCode::from_u16(status).unwrap()),
            headers: Default::default(),
            json: Some(body),
            body: bytes,
            transport_error: None,
            request_identity: "r".into(),
            exchange: Default::default(),
        }
    }

    #[test]
    fn statuses_listed_in_words() {
        assert_eq!(list(&[400]), "400");
        assert_eq!(list(&[400, 412]), "400 or 412");
        assert_eq!(list(&[200, 201, 202]), "200, 201 or 202");
    }

    #[test]
    fn error_body_rules() {
        let good = reply(
            400,
            json!({"error": "BadRequest", "description": "no service_id"}),
        );
        assert_eq!(status(&good, &[400], Operation::Other), Verdict::Pass);
        let empty = reply(400, json!({"error": ""}));
        assert!(matches!(
            status(&empty, &[400], Operation::Other),
            Verdict::Fail(_)
        ));
        let usable = reply(400, json!({"instance_usable": true}));
        assert!(matches!(
            status(&usable, &[400], Operation::Other),
            Verdict::Fail(_)
        ));
        assert_eq!(
            status(&usable, &[400], Operation::Deprovision),
            Verdict::Pass
        );
        let words = reply(400, json!({"error": "bad request"}));
        assert!(matches!(
            status(&words, &[400], Operation::Other),
            Verdict::Warn(_)
        ));
        assert!(matches!(
            status(&good, &[409], Operation::Other),
            Verdict::Fail(_)
        ));
    }

    #[test]
    fn reserved_code_required() {
        let async_required = reply(422, json!({"error": "AsyncRequired"}));
        assert_eq!(
            status_and_code(&async_required, 422, "AsyncRequired", Operation::Other),
            Verdict::Pass
        );
        let other = reply(422, json!({"error": "Unprocessable"}));
        assert!(matches!(
            status_and_code(&other, 422, "AsyncRequired", Operation::Other),
            Verdict::Fail(_)
        ));
    }

    #[test]
    fn combine_prefers_failures() {
        let verdicts = [
            Verdict::Pass,
            Verdict::Warn("w".into()),
            Verdict::Fail("f".into()),
        ];
        assert_eq!(combine(verdicts), Verdict::Fail("f".into()));
        assert_eq!(
            combine([Verdict::Skip("s".into()), Verdict::Warn("w".into())]),
            Verdict::Warn("w".into())
        );
    }
}
