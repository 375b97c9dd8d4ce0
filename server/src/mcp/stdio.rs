//! MCP over stdio (`shelf mcp`): newline-delimited JSON-RPC messages on
//! stdin, one answer per line on stdout and nothing else there (logs go to
//! stderr). The client is the program that started this process, as the
//! local user, so there is no token: it sees every repository served.
//!
//! Messages are answered concurrently (a client may send `ping` while a
//! search runs; ids pair the answers). A tool call that arrives before any
//! repository is live waits for one (an assistant starts the server and
//! asks at once), up to [`mcp::READY_WAIT`], then gets the not-ready error.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::protocol as mcp;
use crate::guard::Scope;
use crate::ops::Api;

/// The longest message read; a longer line is answered with a parse
/// error and skipped.
pub const MAX_LINE_BYTES: usize = 4 << 20;

/// Answers MCP messages read from `input` on `output` until `input` ends or
/// `stop` resolves; answers in flight then get the drain timeout to finish.
pub async fn serve_stdio<R, W>(api: Arc<Api>, input: R, output: W, stop: impl Future<Output = ()>)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    let writer = tokio::spawn(async move {
        let mut output = output;
        while let Some(mut line) = rx.recv().await {
            line.push(b'\n');
            if let Err(e) = async {
                output.write_all(&line).await?;
                output.flush().await
            }
            .await
            {
                tracing::warn!(error = %e, "stdout closed; answers are no longer delivered");
                break;
            }
        }
    });
    let mut reader = BufReader::new(input);
    let mut tasks = JoinSet::new();
    tokio::pin!(stop);
    loop {
        let mut line = Vec::new();
        let read = tokio::select! {
            read = read_message(&mut reader, &mut line) => read,
            () = &mut stop => break,
        };
        let message = match read {
            Ok(Line::End) => break,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read stdin; stopping");
                break;
            }
            Ok(Line::TooLong) => Err(format!(
                "a message is at most {MAX_LINE_BYTES} bytes (one JSON-RPC message per line)"
            )),
            Ok(Line::Message) => serde_json::from_slice::<Value>(&line)
                .map_err(|e| format!("the line is not JSON: {e}")),
        };
        if line.iter().all(u8::is_ascii_whitespace) && message.is_err() {
            continue;
        }
        let (api, tx) = (Arc::clone(&api), tx.clone());
        tasks.spawn(async move {
            let reply = match message {
                Ok(message) => answer(&api, message).await,
                Err(why) => Some(mcp::rpc_error(&Value::Null, mcp::PARSE_ERROR, why)),
            };
            if let Some(reply) = reply {
                let _ = tx
                    .send(serde_json::to_vec(&reply).unwrap_or_default())
                    .await;
            }
        });
        // Finished answers are collected as we go, so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    let drain = api.limits.drain_timeout;
    let drained =
        tokio::time::timeout(drain, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            drain_ms = drain.as_millis() as u64,
            "drain timeout: answers still running are dropped"
        );
    }
    drop(tx);
    let _ = writer.await;
}

enum Line {
    Message,
    TooLong,
    End,
}

/// Reads one line into `line` (without its newline), at most
/// [`MAX_LINE_BYTES`]; the rest of a longer line is skipped.
async fn read_message<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    line: &mut Vec<u8>,
) -> std::io::Result<Line> {
    let limit = MAX_LINE_BYTES as u64 + 1;
    let n = (&mut *reader).take(limit).read_until(b'\n', line).await?;
    if n == 0 {
        return Ok(Line::End);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        return Ok(Line::Message);
    }
    if line.len() <= MAX_LINE_BYTES {
        // The last line, without a newline.
        return Ok(Line::Message);
    }
    let mut rest = Vec::new();
    loop {
        rest.clear();
        let n = (&mut *reader)
            .take(64 * 1024)
            .read_until(b'\n', &mut rest)
            .await?;
        if n == 0 || rest.last() == Some(&b'\n') {
            return Ok(Line::TooLong);
        }
    }
}

/// One line's answer: bounded by the request timeout and kept from
/// panicking outward, as an HTTP request is.
async fn answer(api: &Api, message: Value) -> Option<Value> {
    let id = message.get("id").cloned().unwrap_or(Value::Null);
    let work = AssertUnwindSafe(mcp::answer(api, &Scope::All, message, true, None)).catch_unwind();
    // A tool call may first wait for the first live repository.
    let bound = mcp::READY_WAIT + api.limits.request_timeout;
    match tokio::time::timeout(bound, work).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(_panic)) => {
            tracing::error!("an MCP handler panicked; answered with an internal error");
            Some(mcp::rpc_error(
                &id,
                mcp::INTERNAL_ERROR,
                "the server hit a bug answering this message; it was logged",
            ))
        }
        Err(_) => Some(mcp::rpc_error(
            &id,
            mcp::INTERNAL_ERROR,
            format!("the answer took longer than {} ms", bound.as_millis()),
        )),
    }
}
