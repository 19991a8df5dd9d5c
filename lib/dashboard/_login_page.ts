/** The login page: one password field for MCP_AUTH_TOKEN, posted to `/login`. */
export function loginPage(opts: { error?: string }): string {
  const error = opts.error
    ? `<p class="login-error" role="alert">${escapeHtml(opts.error)}</p>`
    : "";
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>Sign in · Ambient sensors</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard/style.css">
</head>
<body>
<main class="login">
<h1>Ambient sensors</h1>
<form method="post" action="/login" class="card">
<label for="token">Access token (MCP_AUTH_TOKEN)</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
${error}
<button type="submit">Sign in</button>
</form>
</main>
</body>
</html>
`;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
