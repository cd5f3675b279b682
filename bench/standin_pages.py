"""Stand-ins for test pages that are not in ``tests/pages/`` yet, served only when the real file is missing.

They have what the acting bench needs and no more: a docs page with ~200 links, tables, code and a form;
a login form that leads to a welcome page; a 60-product shop behind a cookie overlay. The bench records
which pages were stand-ins, so a result measured on them is never mistaken for one on the real pages.
"""

from __future__ import annotations

HEAD = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>'
    "<style>body{{font:16px sans-serif;margin:0 12px}}table{{border-collapse:collapse}}"
    "td,th{{border:1px solid #ccc;padding:4px}}{style}</style></head><body>"
)


def _page(title: str, body: str, style: str = "") -> str:
    return HEAD.format(title=title, style=style) + body + "</body></html>"


def _docs() -> str:
    sections = []
    for s in range(10):
        links = "".join(
            f'<li><a href="/api/{s}/{i}.html">Function section{s}_item{i}</a></li>' for i in range(18)
        )
        rows = "".join(
            f"<tr><td>param{r}</td><td>string</td><td>What param{r} does.</td></tr>" for r in range(4)
        )
        sections.append(
            f'<section><h2 id="s{s}">Section {s}</h2><p>Section {s} explains a part of the library.</p>'
            f"<ul>{links}</ul><table><tr><th>Name</th><th>Type</th><th>Meaning</th></tr>{rows}</table>"
            f"<pre><code>import lib\nlib.section{s}(param0='x')</code></pre></section>"
        )
    nav = "".join(f'<a href="#s{s}">Section {s}</a> ' for s in range(10))
    form = (
        '<form role="search" action="/search"><label>Search the docs <input name="q" type="search"></label>'
        '<button type="submit">Search</button></form>'
    )
    return _page(
        "Library docs",
        f"<header><nav>{nav}</nav>{form}</header><main><h1>Library reference</h1>{''.join(sections)}</main>"
        '<footer><a href="/privacy">Privacy</a> <a href="/terms">Terms</a></footer>',
    )


LOGIN = _page(
    "Sign in",
    '<main><h1>Sign in</h1><form id="f" action="welcome.html">'
    '<label>Email <input id="email" name="email" type="email" autocomplete="username"></label><br>'
    '<label>Password <input id="password" name="password" type="password"></label><br>'
    '<label><input id="remember" type="checkbox"> Remember me</label><br>'
    '<p id="error" role="alert" hidden>Wrong email or password.</p>'
    '<button type="submit">Sign in</button></form>'
    '<a href="/forgot">Forgot your password?</a></main>'
    "<script>document.getElementById('f').addEventListener('submit', e => { e.preventDefault();"
    "if (document.getElementById('password').value !== 'correct horse') {"
    "document.getElementById('error').hidden = false; return; }"
    "setTimeout(() => { location.href = 'welcome.html'; }, 150); });</script>",
)

WELCOME = _page(
    "Welcome",
    '<main><h1>Welcome back</h1><p>You are signed in.</p><a href="login.html">Sign out</a></main>',
)


def _shop() -> str:
    products = "".join(
        f'<li data-cat="{("shoes", "bags", "hats")[i % 3]}"><h3>Product {i}</h3><p>{9 + i}.99 EUR</p>'
        f'<button class="add" aria-label="Add Product {i} to cart">Add to cart</button></li>'
        for i in range(60)
    )
    return _page(
        "Shop",
        '<header><h1>Shop</h1><p>Cart: <span id="cart">0</span> items</p>'
        '<label>Category <select id="cat"><option value="">All</option><option>shoes</option>'
        "<option>bags</option><option>hats</option></select></label></header>"
        f'<main><ul id="list">{products}</ul></main>'
        '<div id="cookies" role="dialog" aria-label="Cookies"><p>We use cookies.</p>'
        '<button id="accept">Accept all</button></div>'
        "<script>const cart = document.getElementById('cart');"
        "document.getElementById('list').addEventListener('click', e => {"
        "if (e.target.matches('.add')) cart.textContent = String(Number(cart.textContent) + 1); });"
        "document.getElementById('accept').onclick = () => document.getElementById('cookies').remove();"
        "document.getElementById('cat').onchange = e => {"
        " for (const li of document.querySelectorAll('#list li'))"
        " li.hidden = !!e.target.value && li.dataset.cat !== e.target.value; };</script>",
        style="#cookies{position:fixed;inset:auto 0 0 0;height:40vh;background:#fff;"
        "border-top:2px solid #000}",
    )


# name in tests/pages -> its stand-in
STANDINS: dict[str, str] = {
    "docs.html": _docs(),
    "login.html": LOGIN,
    "welcome.html": WELCOME,
    "shop.html": _shop(),
}
