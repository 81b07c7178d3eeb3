//! The server over an in-memory pipe, spoken to in raw JSON-RPC lines (no
//! guests: only calls that never boot one). The MCP Python client tests in
//! tests/python cover real guests.

use std::time::Duration;

use pyro_mcp::paths::HostPaths;
use pyro_mcp::{Profile, PyroServer};
use rmcp::ServiceExt;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines};

struct Client {
    lines: Lines<BufReader<tokio::io::ReadHalf<DuplexStream>>>,
    write: tokio::io::WriteHalf<DuplexStream>,
    _dirs: tempfile::TempDir,
}

impl Client {
    async fn start(profile: Profile) -> Client {
        let dirs = tempfile::tempdir().unwrap();
        let mut config = pyro_core::Config::from_env().unwrap();
        config.state_dir = dirs.path().join("state");
        config.cache_dir = dirs.path().join("cache");
        let manager = pyro_core::Manager::new(config);
        let paths = HostPaths::new(dirs.path(), &[]).unwrap();
        let server = PyroServer::new(manager, profile, paths);
        let (ours, theirs) = tokio::io::duplex(1 << 20);
        tokio::spawn(async move {
            if let Ok(running) = server.serve(theirs).await {
                let _ = running.waiting().await;
            }
        });
        let (read, write) = tokio::io::split(ours);
        let mut client = Client {
            lines: BufReader::new(read).lines(),
            write,
            _dirs: dirs,
        };
        let init = client
            .request(
                1,
                "initialize",
                json!({"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "test", "version": "0"}}),
            )
            .await;
        assert_eq!(init["result"]["serverInfo"]["name"], "pyro_mcp", "{init}");
        client
            .send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        client
    }

    async fn send(&mut self, msg: Value) {
        let mut line = msg.to_string();
        line.push('\n');
        self.write.write_all(line.as_bytes()).await.unwrap();
    }

    /// Sends a request and returns its response (skipping notifications).
    async fn request(&mut self, id: u64, method: &str, params: Value) -> Value {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        loop {
            let line = tokio::time::timeout(Duration::from_secs(30), self.lines.next_line())
                .await
                .expect("response in time")
                .unwrap()
                .expect("server closed the stream");
            let msg: Value = serde_json::from_str(&line).unwrap();
            if msg["id"] == json!(id) {
                return msg;
            }
        }
    }

    async fn tool_names(&mut self) -> Vec<String> {
        let r = self.request(2, "tools/list", json!({})).await;
        r["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    }
}

#[tokio::test]
async fn profiles_list_their_tools_with_core_schemas() {
    let mut c = Client::start(Profile::VmRun).await;
    assert_eq!(c.tool_names().await, ["vm_run"]);

    let mut c = Client::start(Profile::WorkspaceFull).await;
    let r = c.request(3, "tools/list", json!({})).await;
    let tools = r["result"]["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 44);
    let schema = pyro_core::api::schema_document();
    for tool in tools {
        let name = tool["name"].as_str().unwrap();
        let op = pyro_mcp::tools::TOOLS
            .iter()
            .find(|t| t.name == name)
            .unwrap()
            .operation;
        // The schemas are the operation API's, references inlined.
        let params = pyro_mcp::tools::inline_refs(schema["operations"][op]["params"].clone());
        let result = pyro_mcp::tools::inline_refs(schema["operations"][op]["result"].clone());
        assert_eq!(tool["inputSchema"], params, "{name}");
        assert_eq!(tool["outputSchema"], result, "{name}");
    }
}

#[tokio::test]
async fn calls_return_structured_results_and_tool_errors() {
    let mut c = Client::start(Profile::WorkspaceCore).await;
    let r = c
        .request(
            4,
            "tools/call",
            json!({"name": "workspace_list", "arguments": {}}),
        )
        .await;
    let result = &r["result"];
    assert_eq!(result["isError"], false, "{r}");
    assert_eq!(
        result["structuredContent"],
        json!({"count": 0, "workspaces": []})
    );
    assert_eq!(
        result["content"][0]["text"],
        "{\n  \"count\": 0,\n  \"workspaces\": []\n}"
    );

    let r = c
        .request(
            5,
            "tools/call",
            json!({"name": "workspace_logs", "arguments": {"workspace_id": "ghost"}}),
        )
        .await;
    let result = &r["result"];
    assert_eq!(result["isError"], true, "{r}");
    assert_eq!(result["structuredContent"]["code"], "not_found");
    let text = result["content"][0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("Error executing tool workspace_logs: workspace 'ghost' does not exist\n"),
        "{text}"
    );

    // No arguments at all is an empty object: the operation names the field.
    let r = c
        .request(6, "tools/call", json!({"name": "workspace_status"}))
        .await;
    assert_eq!(r["result"]["isError"], true, "{r}");
    assert!(
        r["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("workspace_id"),
        "{r}"
    );

    // Unknown tools, and tools of another profile, are protocol errors.
    for (id, name) in [(7, "nope"), (8, "workspace_start")] {
        let r = c
            .request(id, "tools/call", json!({"name": name, "arguments": {}}))
            .await;
        assert_eq!(r["error"]["code"], -32602, "{r}");
        let message = r["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("unknown tool '{name}'")),
            "{message}"
        );
    }
}
