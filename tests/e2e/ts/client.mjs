#!/usr/bin/env node
// A scripted MCP client on the official TypeScript SDK, for the end-to-end suite
// (tests/e2e/test_typescript_sdk.py runs it against the rmcp example servers).
//
//   node client.mjs stdio SERVER_BINARY [--name NAME] [--version VERSION]
//   node client.mjs http URL [--name NAME] [--version VERSION]
//
// Options: --timeout-ms N (each request; default 10000), --crash-timeout-ms N (the call that
// panics and is never answered; default 3000), --deadline-ms N (the whole run; default 45000).
// --calls N: instead of the scripted session, N calls of `add(i, 1000)`, i = 1..N (each a step
// labelled `add(i, 1000)`), then the close. --resume-file PATH (with --calls): after the first
// half of the calls, wait until PATH exists (the test creates it when it is ready for the rest).
//
// Runs one scripted session (every step of scriptedSession below, or the --calls ones, whatever
// the previous one gave) and prints ONE JSON object on stdout: each step's method, params, and
// whether it got a result, an `isError` result, a JSON-RPC error (with its code) or no answer
// ("timeout"); every JSON-RPC message the client sent and received (so that the test knows each
// request's id and the negotiated protocol version); on HTTP the `mcp-session-id` the transport
// got and every HTTP exchange; on stdio how the server exited, and when the close began and
// ended. Diagnostics go to stderr; so does the stdio server's stderr.
//
// stdio: the server gets the SDK's default environment plus this process's TB_*,
// MCP_ANALYTICS_* and RUST_* variables, and this process's working directory.
// Exit status: 0 when the script ran to its end (whatever the server answered), 1 when it could
// not (no connection, deadline), 2 on a usage error.

import { existsSync, readFileSync } from 'node:fs';
import process from 'node:process';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';

const SDK_VERSION = JSON.parse(
    readFileSync(new URL('./node_modules/@modelcontextprotocol/sdk/package.json', import.meta.url), 'utf8')
).version;
const FORWARDED_ENV = /^(TB_|MCP_ANALYTICS_|RUST_)/;

function usage(message) {
    process.stderr.write(
        `${message}\nusage: node client.mjs (stdio SERVER_BINARY | http URL) [--name NAME] [--version VERSION] ` +
            '[--timeout-ms N] [--crash-timeout-ms N] [--deadline-ms N] [--calls N [--resume-file PATH]]\n'
    );
    process.exit(2);
}

function parseArgs(argv) {
    const [mode, target, ...rest] = argv;
    if (mode !== 'stdio' && mode !== 'http') usage(`unknown mode ${JSON.stringify(mode)}`);
    if (!target) usage(`${mode} needs a ${mode === 'stdio' ? 'server binary' : 'URL'}`);
    const options = {
        mode,
        target,
        name: 'ts-sdk-e2e',
        version: '0.0.0',
        timeoutMs: 10000,
        crashTimeoutMs: 3000,
        deadlineMs: 45000
    };
    const numeric = {
        '--timeout-ms': 'timeoutMs',
        '--crash-timeout-ms': 'crashTimeoutMs',
        '--deadline-ms': 'deadlineMs',
        '--calls': 'calls'
    };
    for (let i = 0; i < rest.length; i += 2) {
        const [flag, value] = [rest[i], rest[i + 1]];
        if (value === undefined) usage(`${flag} needs a value`);
        if (flag === '--name') options.name = value;
        else if (flag === '--version') options.version = value;
        else if (flag === '--resume-file') options.resumeFile = value;
        else if (flag in numeric) {
            const n = Number(value);
            if (!Number.isInteger(n) || n <= 0) usage(`${flag} needs a positive integer`);
            options[numeric[flag]] = n;
        } else usage(`unknown option ${flag}`);
    }
    if (options.resumeFile !== undefined && options.calls === undefined) usage('--resume-file needs --calls');
    return options;
}

/** Resolves once `path` exists, polling. */
async function fileExists(path) {
    while (!existsSync(path)) await new Promise(resolve => setTimeout(resolve, 20));
}

function errorText(error) {
    return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** Notifications the transport has not delivered yet (over HTTP: their POST not answered). */
const pendingNotifications = new Set();

/** Records every JSON-RPC message through the transport, both ways. */
function tapTransport(transport, report) {
    const send = transport.send.bind(transport);
    transport.send = (message, options) => {
        report.sent.push(summarizeMessage(message));
        const sending = send(message, options);
        if ('method' in message && !('id' in message)) {
            pendingNotifications.add(sending);
            const settled = () => pendingNotifications.delete(sending);
            sending.then(settled, settled);
        }
        return sending;
    };
    // The Client sets onmessage in connect(), after this: wrap it when it is set.
    let handler;
    Object.defineProperty(transport, 'onmessage', {
        configurable: true,
        get: () => handler,
        set: inner => {
            handler =
                inner &&
                ((message, extra) => {
                    report.received.push(summarizeMessage(message));
                    return inner(message, extra);
                });
        }
    });
}

function summarizeMessage(message) {
    const summary = {};
    if ('id' in message) summary.id = message.id;
    if ('method' in message) {
        summary.type = 'id' in message ? 'request' : 'notification';
        summary.method = message.method;
        if (message.params !== undefined) summary.params = message.params;
    } else if ('error' in message) {
        summary.type = 'error';
        summary.error = message.error;
    } else {
        summary.type = 'result';
        summary.result = message.result;
    }
    return summary;
}

async function main() {
    const options = parseArgs(process.argv.slice(2));
    const report = {
        sdk: { package: '@modelcontextprotocol/sdk', version: SDK_VERSION },
        mode: options.mode,
        target: options.target,
        client_info: { name: options.name, version: options.version },
        protocol_version: null,
        server_info: null,
        session_id: null,
        steps: [],
        sent: [],
        received: [],
        transport_errors: [],
        completed: false
    };
    let finished = false;
    const emit = code => {
        if (finished) return;
        finished = true;
        process.stdout.write(`${JSON.stringify(report)}\n`, () => process.exit(code));
    };
    const deadline = setTimeout(() => {
        report.fatal = `deadline of ${options.deadlineMs} ms reached`;
        emit(1);
    }, options.deadlineMs);

    let transport;
    let child;
    if (options.mode === 'stdio') {
        const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => FORWARDED_ENV.test(key)));
        transport = new StdioClientTransport({ command: options.target, args: [], env, stderr: 'inherit' });
        report.server_exit = null;
    } else {
        report.http = { exchanges: [] };
        // Records each HTTP exchange, with the session id sent and the one given back.
        const recordingFetch = async (url, init) => {
            const headers = new Headers(init?.headers);
            const exchange = { method: init?.method ?? 'GET', sent_session: headers.get('mcp-session-id') };
            report.http.exchanges.push(exchange);
            try {
                const response = await fetch(url, init);
                exchange.status = response.status;
                exchange.given_session = response.headers.get('mcp-session-id');
                return response;
            } catch (error) {
                exchange.error = errorText(error);
                throw error;
            }
        };
        transport = new StreamableHTTPClientTransport(new URL(options.target), { fetch: recordingFetch });
    }
    tapTransport(transport, report);

    const client = new Client({ name: options.name, version: options.version });
    client.onerror = error => report.transport_errors.push(errorText(error));

    // --- initialize
    const connectStep = { step: 'initialize', method: 'initialize', params: { clientInfo: report.client_info } };
    report.steps.push(connectStep);
    try {
        await client.connect(transport, { timeout: options.timeoutMs });
        connectStep.outcome = 'result';
        report.connected_at_ms = Date.now();
    } catch (error) {
        connectStep.outcome = 'failed';
        connectStep.error_message = errorText(error);
        report.fatal = `could not connect: ${errorText(error)}`;
        clearTimeout(deadline);
        emit(1);
        return;
    }
    connectStep.request_id = lastRequestId(report, 'initialize');
    const initResult = report.received.find(m => m.id === connectStep.request_id && m.type === 'result');
    report.protocol_version = initResult?.result?.protocolVersion ?? null;
    report.server_info = client.getServerVersion() ?? null;
    if (options.mode === 'stdio') {
        // Private, but the only way to see whether the server exited by itself on close.
        child = transport._process;
        child?.once('exit', (code, signal) => {
            report.server_exit = { code, signal, killed_by_client: Boolean(child.killed) };
        });
        report.server_pid = transport.pid;
    } else {
        report.session_id = transport.sessionId ?? null;
        report.http_protocol_version = transport.protocolVersion ?? null;
    }

    const timeout = { timeout: options.timeoutMs };
    const step = async (name, method, params, call) => {
        const entry = { step: name, method, params };
        report.steps.push(entry);
        const before = report.sent.length;
        try {
            const result = await call();
            entry.outcome = result?.isError === true ? 'is_error' : 'result';
            if (Array.isArray(result?.content)) entry.text = texts(result.content);
        } catch (error) {
            entry.error_message = errorText(error);
            if (error instanceof McpError) entry.error_code = error.code;
        }
        const request = report.sent.slice(before).filter(m => m.type === 'request' && m.method === method).pop();
        entry.request_id = request?.id ?? null;
        if (entry.outcome === undefined) {
            // What came back on the wire decides: an error response, or nothing at all.
            const answer = report.received.find(m => request && m.id === request.id && m.type !== 'request');
            if (answer?.type === 'error') {
                entry.outcome = 'error';
                entry.error_code = answer.error.code;
                entry.error_message = answer.error.message;
            } else if (!answer && entry.error_code === -32001) {
                entry.outcome = 'timeout';
            } else {
                entry.outcome = 'client_error'; // the SDK rejected an answer, or never sent the request
            }
        }
        process.stderr.write(`[${options.name}] ${name}: ${entry.outcome}${entry.error_code !== undefined ? ` (${entry.error_code})` : ''}\n`);
    };

    const tool = (name, args, label, opts = timeout) =>
        step(label, 'tools/call', { name, arguments: args }, () =>
            client.callTool({ name, arguments: args }, undefined, opts)
        );
    if (options.calls !== undefined) {
        for (let i = 1; i <= options.calls; i++) {
            if (options.resumeFile !== undefined && i === Math.floor(options.calls / 2) + 1) {
                await fileExists(options.resumeFile); // bounded by the run's deadline
            }
            await tool('add', { a: i, b: 1000 }, `add(${i}, 1000)`);
        }
    } else {
        await scriptedSession(client, step, tool, timeout, options);
    }

    // --- close
    const closeStep = { step: 'close', method: null };
    report.steps.push(closeStep);
    report.closing_at_ms = Date.now();
    try {
        if (options.mode === 'http') {
            // DELETE with the session id: the server ends the session.
            await transport.terminateSession();
            closeStep.terminated_session = true;
        }
        // stdio: closes the server's stdin, waits for it to exit (SIGTERM after 2 s, then SIGKILL).
        await client.close();
        closeStep.outcome = 'closed';
        report.closed_at_ms = Date.now();
    } catch (error) {
        closeStep.outcome = 'failed';
        closeStep.error_message = errorText(error);
    }
    if (child && report.server_exit === null) {
        await new Promise(resolve => {
            if (child.exitCode !== null || child.signalCode !== null) resolve();
            else child.once('exit', resolve);
        });
    }
    report.completed = true;
    clearTimeout(deadline);
    emit(0);
}

/** The scripted session: every handler path of the demo server, each step recorded by `step`. */
async function scriptedSession(client, step, tool, timeout, options) {
    await step('tools/list', 'tools/list', {}, () => client.listTools({}, timeout));
    await step('prompts/list', 'prompts/list', {}, () => client.listPrompts({}, timeout));
    await step('resources/list', 'resources/list', {}, () => client.listResources({}, timeout));
    await step('ping', 'ping', {}, () => client.ping(timeout));
    await tool('add', { a: 2, b: 3 }, 'add(2, 3)');
    await tool('divide', { a: 1, b: 0 }, 'divide(1, 0)');
    await tool('lookup', { key: 'cobol' }, 'lookup(cobol)');
    await tool('no_such_tool', {}, 'no_such_tool()');
    await tool('add', { a: 'x' }, 'add(x)');
    await step('greet(Ada)', 'prompts/get', { name: 'greet', arguments: { name: 'Ada' } }, () =>
        client.getPrompt({ name: 'greet', arguments: { name: 'Ada' } }, timeout)
    );
    await step('read mem://readme', 'resources/read', { uri: 'mem://readme' }, () =>
        client.readResource({ uri: 'mem://readme' }, timeout)
    );
    // The server panics: rmcp never answers; the SDK gives up and sends notifications/cancelled,
    // without waiting for it to be delivered. Wait for that (over HTTP, its POST answered), then
    // make one more request: the server has the notification before the session ends, and it
    // goes on serving.
    await tool('crash', {}, 'crash()', { timeout: options.crashTimeoutMs });
    await Promise.allSettled([...pendingNotifications]);
    await step('ping after crash()', 'ping', {}, () => client.ping(timeout));
}

function lastRequestId(report, method) {
    return report.sent.filter(m => m.type === 'request' && m.method === method).pop()?.id ?? null;
}

function texts(content) {
    return content
        .filter(block => block.type === 'text')
        .map(block => block.text)
        .join('\n');
}

main().catch(error => {
    process.stderr.write(`client.mjs: ${error?.stack ?? error}\n`);
    process.stdout.write(`${JSON.stringify({ completed: false, fatal: errorText(error) })}\n`, () => process.exit(1));
});
