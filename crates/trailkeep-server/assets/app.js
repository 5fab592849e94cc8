// Trailkeep dashboard: a small layer over pages the server renders whole, so that every page also works
// without it. Hand-written, no build step; served from the binary under a content-hashed name.
//
// Event content is hostile. It reaches this script two ways, and neither goes through innerHTML:
// fragments the server rendered (askama escaped every value) are parsed with DOMParser and their nodes
// adopted, and JSON from the API is written with textContent only. The Content-Security-Policy allows
// no inline script, so even markup that slipped through could not run.
(function () {
  'use strict';

  // ---- Themes: the system's, or one chosen here and remembered in this browser. ----
  const THEMES = ['auto', 'light', 'dark'];
  function storedTheme() {
    try {
      const t = localStorage.getItem('trailkeep-theme');
      return THEMES.includes(t) ? t : 'auto';
    } catch (e) {
      return 'auto';
    }
  }
  function applyTheme(theme) {
    if (theme === 'auto') delete document.documentElement.dataset.theme;
    else document.documentElement.dataset.theme = theme;
    const button = document.getElementById('theme-toggle');
    if (button) button.textContent = 'Theme: ' + theme;
  }
  let theme = storedTheme();
  applyTheme(theme);

  const $ = (selector, root) => (root || document).querySelector(selector);
  const $$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));

  // ---- Small helpers ----
  function pad(n, width) {
    return String(n).padStart(width || 2, '0');
  }
  function localText(d, withMillis) {
    const text = d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' +
      pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
    return withMillis ? text + '.' + pad(d.getMilliseconds(), 3) : text;
  }
  function zoneText(d) {
    const offset = -d.getTimezoneOffset();
    const sign = offset < 0 ? '-' : '+';
    const abs = Math.abs(offset);
    return 'UTC' + sign + pad(Math.floor(abs / 60)) + ':' + pad(abs % 60);
  }
  // Times arrive as UTC ISO strings in `datetime`; shown in the browser's zone, with milliseconds
  // (and the zone) where the expanded row asks for the full time.
  function localizeTimes(root) {
    $$('time[datetime]:not([data-local])', root).forEach((t) => {
      const d = new Date(t.getAttribute('datetime'));
      if (isNaN(d.getTime())) return;
      const full = t.classList.contains('full');
      t.textContent = full ? localText(d, true) + ' ' + zoneText(d) : localText(d, false);
      t.title = t.getAttribute('datetime');
      t.dataset.local = '1';
    });
  }
  function parseHtml(text) {
    return new DOMParser().parseFromString(text, 'text/html');
  }
  function orgParam() {
    return document.body.dataset.org || '';
  }
  function withOrg(url) {
    const org = orgParam();
    if (!org) return url;
    return url + (url.includes('?') ? '&' : '?') + 'organization_id=' + encodeURIComponent(org);
  }
  let toastTimer = null;
  function toast(message) {
    const el = $('#toast');
    if (!el) return;
    el.textContent = message;
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { el.hidden = true; }, 2500);
  }
  async function fetchJson(url) {
    const response = await fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const message = body && body.error && body.error.message ? body.error.message : 'HTTP ' + response.status;
      throw new Error(message);
    }
    return body;
  }

  // ---- Copying ----
  async function copyText(text, what) {
    let ok = false;
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
        ok = true;
      }
    } catch (e) {
      ok = false;
    }
    if (!ok) {
      // Plain-HTTP origins have no clipboard API: a selected, off-screen text area and the copy command.
      const area = document.createElement('textarea');
      area.value = text;
      area.setAttribute('readonly', '');
      area.className = 'sr';
      document.body.appendChild(area);
      area.select();
      try {
        ok = document.execCommand('copy');
      } catch (e) {
        ok = false;
      }
      area.remove();
    }
    toast(ok ? 'Copied ' + what : 'Could not copy ' + what);
    return ok;
  }
  const events = new Map(); // id -> the event as the API returns it, once fetched
  async function eventJson(id) {
    if (!events.has(id)) {
      const body = await fetchJson(withOrg('/v1/events/' + encodeURIComponent(id)));
      events.set(id, body);
    }
    return events.get(id);
  }
  async function copyRow(id) {
    try {
      const event = await eventJson(id);
      await copyText(JSON.stringify(event, null, 2), 'the row as JSON');
    } catch (e) {
      toast('Could not copy the row: ' + e.message);
    }
  }

  // ---- Integrity: the API's verdict, and the audit path re-hashed here when the browser can. ----
  const VERDICTS = {
    verified: 'Verified',
    altered: 'Altered since it was sealed',
    missing: 'Missing from the log',
    not_in_log: 'Not in the signed log',
    pending: 'Pending: not sealed yet',
    failed: 'Proof does not check',
  };
  function fromBase64(text) {
    const bin = atob(text);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return bytes;
  }
  async function nodeHash(left, right) {
    const buf = new Uint8Array(1 + left.length + right.length);
    buf[0] = 1;
    buf.set(left, 1);
    buf.set(right, 1 + left.length);
    return new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
  }
  function sameBytes(a, b) {
    return a.length === b.length && a.every((x, i) => x === b[i]);
  }
  // RFC 9162 section 2.1.3.2: does the audit path lead from the leaf to the root? null when the browser
  // has no Web Crypto (plain-HTTP origins other than localhost).
  async function auditPathHolds(p) {
    if (!(window.crypto && crypto.subtle) || !Array.isArray(p.proof)) return null;
    if (p.leaf_index >= p.tree_size) return false;
    let fn = p.leaf_index;
    let sn = p.tree_size - 1;
    let r = fromBase64(p.leaf_hash);
    for (const sibling of p.proof.map(fromBase64)) {
      if (sn === 0) return false;
      if (fn % 2 === 1 || fn === sn) {
        r = await nodeHash(sibling, r);
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      } else {
        r = await nodeHash(r, sibling);
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    if (sn !== 0 || !sameBytes(r, fromBase64(p.root_hash))) return false;
    // The signed checkpoint's third line is its root hash.
    if (p.checkpoint && p.checkpoint.split('\n')[2] !== p.root_hash) return false;
    return true;
  }
  function setBadge(badge, status) {
    badge.className = 'badge ' + (VERDICTS[status] ? status : 'failed');
    badge.textContent = VERDICTS[status] || 'Integrity unknown';
    badge.dataset.status = status;
  }
  async function checkIntegrity(id, detail, attempt) {
    const badge = $('[data-integrity]', detail);
    const note = $('[data-integrity-note]', detail);
    if (!badge || !detail.isConnected) return;
    try {
      const body = await fetchJson(withOrg('/v1/events/' + encodeURIComponent(id) + '?proof=true'));
      const integrity = body.integrity || { status: 'pending' };
      delete body.integrity;
      events.set(id, body);
      setBadge(badge, integrity.status);
      if (integrity.status === 'pending') {
        note.textContent = 'A signed checkpoint covers new events within a second; checking again.';
        if (attempt < 30) setTimeout(() => checkIntegrity(id, detail, attempt + 1), 1000);
        return;
      }
      if (integrity.status !== 'verified') {
        note.textContent = integrity.status === 'not_in_log'
          ? 'This stored event was never sealed into the log.'
          : 'Checked against the signed checkpoint of ' + integrity.tree_size + ' events.';
        return;
      }
      note.textContent = 'Event ' + integrity.seq + ' is in the signed checkpoint of ' + integrity.tree_size + ' events';
      const holds = await auditPathHolds(integrity);
      if (holds === true) note.textContent += '; its audit path was re-checked in this browser.';
      else if (holds === false) {
        setBadge(badge, 'failed');
        note.textContent = 'The audit path the server sent does not lead to the checkpoint\'s root.';
      } else note.textContent += '.';
    } catch (e) {
      setBadge(badge, 'unknown');
      note.textContent = 'Could not check: ' + e.message;
    }
  }

  // ---- Rows: expanding in place, the current row, keyboard navigation ----
  let current = null;
  function rows() {
    return $$('#rows > tr.row');
  }
  function setCurrent(tr, focus) {
    if (current && current !== tr) current.classList.remove('current');
    current = tr;
    if (!tr) return;
    tr.classList.add('current');
    if (focus) {
      tr.focus({ preventScroll: true });
      tr.scrollIntoView({ block: 'nearest' });
    }
  }
  function move(delta) {
    const all = rows();
    if (all.length === 0) return;
    const at = current ? all.indexOf(current) : -1;
    const next = at < 0 ? all[0] : all[Math.max(0, Math.min(all.length - 1, at + delta))];
    setCurrent(next, true);
  }
  async function toggle(tr) {
    const next = tr.nextElementSibling;
    if (next && next.classList.contains('detail-row')) {
      next.remove();
      tr.setAttribute('aria-expanded', 'false');
      return;
    }
    const id = tr.dataset.id;
    tr.setAttribute('aria-expanded', 'true');
    const detailRow = document.createElement('tr');
    detailRow.className = 'detail-row';
    const cell = document.createElement('td');
    cell.colSpan = tr.children.length;
    cell.textContent = 'Loading…';
    detailRow.appendChild(cell);
    tr.after(detailRow);
    try {
      const response = await fetch(withOrg('/ui/events/' + encodeURIComponent(id)), { credentials: 'same-origin' });
      const doc = parseHtml(await response.text());
      const fragment = doc.getElementById('fragment');
      if (!response.ok || !fragment) {
        const error = doc.getElementById('fragment-error');
        cell.textContent = error ? error.textContent : 'Could not load this event (HTTP ' + response.status + ').';
        return;
      }
      const detail = document.adoptNode(fragment);
      detail.removeAttribute('id');
      cell.replaceChildren(detail);
      localizeTimes(detail);
      checkIntegrity(id, detail, 0);
    } catch (e) {
      cell.textContent = 'Could not load this event: ' + e.message;
    }
  }
  function rowIdOf(el) {
    const detail = el.closest('.detail');
    if (detail && detail.dataset.id) return detail.dataset.id;
    const tr = el.closest('tr.row');
    return tr ? tr.dataset.id : null;
  }
  function onTableClick(e) {
    const button = e.target.closest('button');
    if (button) {
      e.stopPropagation();
      if (button.classList.contains('copy')) copyText(button.dataset.copy || '', button.getAttribute('aria-label')
        ? button.getAttribute('aria-label').replace(/^Copy /, 'the ') : 'the value');
      else if (button.classList.contains('copy-row')) {
        const id = rowIdOf(button);
        if (id) copyRow(id);
      }
      return;
    }
    if (e.target.closest('a, summary, tr.detail-row')) return;
    // Selecting text in a row is not a click on it.
    if (String(window.getSelection ? window.getSelection() : '').length > 0) return;
    const tr = e.target.closest('tr.row');
    if (tr) {
      setCurrent(tr, false);
      toggle(tr);
    }
  }
  function onKey(e) {
    const target = e.target;
    const typing = target.matches && target.matches('input, select, textarea');
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (typing) {
      if (e.key === 'Escape') {
        target.blur();
        if (current) current.focus({ preventScroll: true });
      }
      return;
    }
    if (e.key === '/') {
      const search = $('#f-text') || $('#f-action');
      if (search) {
        e.preventDefault();
        search.focus();
        search.select();
      }
    } else if (e.key === 'j' || e.key === 'ArrowDown') {
      if (!$('#rows')) return;
      e.preventDefault();
      move(1);
    } else if (e.key === 'k' || e.key === 'ArrowUp') {
      if (!$('#rows')) return;
      e.preventDefault();
      move(-1);
    } else if (e.key === 'Enter' && current) {
      if (target.closest && target.closest('button, a, summary')) return;
      e.preventDefault();
      toggle(current);
    } else if (e.key === 'Escape' && current && current.getAttribute('aria-expanded') === 'true') {
      toggle(current);
    } else if (e.key === 'c' && current) {
      copyRow(current.dataset.id);
    }
  }

  // ---- Filters: in the URL, applied as you type ----
  let timer = null;
  let inflight = null;
  function isPreset(form) {
    const range = form.elements.range;
    return !range || range.value !== 'custom';
  }
  // The form's non-empty values as parameters. `forUrl` leaves out the fields the page's own path already
  // says (a project page's project).
  function formPairs(form, forUrl) {
    const preset = isPreset(form);
    const pairs = [];
    for (const el of form.elements) {
      if (!el.name || el.disabled) continue;
      if (forUrl && el.hasAttribute('data-fixed')) continue;
      const value = el.value.trim();
      if (!value) continue;
      if (el.name === 'range' && (value === 'custom' || value === 'all')) continue;
      if ((el.name === 'from' || el.name === 'to') && preset) continue;
      pairs.push([el.name, value]);
    }
    return pairs;
  }
  function query(pairs) {
    return new URLSearchParams(pairs).toString();
  }
  function updateExports(pairs) {
    const qs = query(pairs);
    $$('a#export-csv, a#export-json').forEach((a) => {
      a.href = a.dataset.base + (qs ? '&' + qs : '') + (a.dataset.extra ? '&' + a.dataset.extra : '');
    });
  }
  function showError(message) {
    const el = $('#filter-error');
    if (!el) return;
    el.textContent = message;
    el.hidden = !message;
  }
  function setMore(cursor) {
    const more = $('#more');
    if (!more) return;
    more.dataset.cursor = cursor || '';
    more.hidden = !cursor;
    const qs = query(formPairs($('#filters'), true).concat(cursor ? [['cursor', cursor]] : []));
    more.href = location.pathname + (qs ? '?' + qs : '');
  }
  function putRows(doc, append) {
    const fragment = doc.getElementById('fragment');
    const tbody = $('#rows');
    if (!fragment || !tbody) return;
    if (!append) {
      tbody.replaceChildren();
      setCurrent(null, false);
    } else {
      $$('tr.empty', tbody).forEach((tr) => tr.remove());
    }
    for (const tr of Array.from(fragment.children)) {
      if (append && tr.classList.contains('empty')) continue;
      tbody.appendChild(document.adoptNode(tr));
    }
    localizeTimes(tbody);
    setMore(fragment.dataset.nextCursor);
  }
  let totalsAsked = 0;
  async function loadTotals(form, pairs) {
    if (!form.dataset.totals) return;
    // Totals take longer than rows; only the answer to the latest filter may show.
    const asked = ++totalsAsked;
    const cells = $$('[data-total]');
    cells.forEach((dd) => { dd.textContent = '…'; });
    let texts = null;
    try {
      texts = (await fetchJson(form.dataset.totals + '?' + query(pairs))).text;
    } catch (e) {
      texts = null;
    }
    if (asked !== totalsAsked) return;
    cells.forEach((dd) => { dd.textContent = texts ? texts[dd.dataset.total] : '—'; });
  }
  async function fetchRows(form, pairs, append) {
    if (inflight) inflight.abort();
    const controller = new AbortController();
    inflight = controller;
    form.classList.add('busy');
    try {
      const response = await fetch(form.dataset.fragment + '?' + query(pairs), {
        credentials: 'same-origin',
        signal: controller.signal,
      });
      const doc = parseHtml(await response.text());
      if (!response.ok) {
        const error = doc.getElementById('fragment-error');
        showError(error ? error.textContent : 'The server answered ' + response.status + '.');
        return false;
      }
      showError('');
      putRows(doc, append);
      return true;
    } catch (e) {
      if (e.name !== 'AbortError') showError('Could not reach the server: ' + e.message);
      return false;
    } finally {
      if (inflight === controller) {
        inflight = null;
        form.classList.remove('busy');
      }
    }
  }
  async function refresh() {
    const form = $('#filters');
    const pairs = formPairs(form, false);
    const qs = query(formPairs(form, true));
    history.replaceState(null, '', location.pathname + (qs ? '?' + qs : ''));
    updateExports(pairs);
    if (await fetchRows(form, pairs, false)) loadTotals(form, pairs);
  }
  function schedule(delay) {
    clearTimeout(timer);
    timer = setTimeout(refresh, delay);
  }
  function setupFilters(form) {
    const range = form.elements.range;
    const syncRange = () => { form.dataset.range = isPreset(form) ? 'preset' : 'custom'; };
    syncRange();
    form.addEventListener('input', (e) => {
      const name = e.target.name;
      if ((name === 'from' || name === 'to') && range && range.value !== 'custom') {
        range.value = 'custom';
        syncRange();
      }
      if (e.target.tagName !== 'SELECT') schedule(300);
    });
    form.addEventListener('change', (e) => {
      if (e.target === range) {
        if (range.value !== 'custom') {
          form.elements.from.value = '';
          form.elements.to.value = '';
        }
        syncRange();
        if (range.value === 'custom') form.elements.from.focus();
      }
      if (e.target.tagName === 'SELECT') schedule(0);
    });
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      schedule(0);
    });
    const more = $('#more');
    if (more) {
      more.addEventListener('click', async (e) => {
        e.preventDefault();
        const cursor = more.dataset.cursor;
        if (!cursor) return;
        more.setAttribute('aria-busy', 'true');
        await fetchRows(form, formPairs(form, false).concat([['cursor', cursor]]), true);
        more.removeAttribute('aria-busy');
      });
    }
    loadTotals(form, formPairs(form, false));
  }

  function init() {
    localizeTimes(document);
    applyTheme(theme);
    const toggleTheme = $('#theme-toggle');
    if (toggleTheme) {
      toggleTheme.addEventListener('click', () => {
        theme = THEMES[(THEMES.indexOf(theme) + 1) % THEMES.length];
        const next = theme;
        try {
          localStorage.setItem('trailkeep-theme', next);
        } catch (e) {
          // Private windows may refuse storage: the theme then lasts for this page only.
        }
        applyTheme(next);
      });
    }
    const signOut = $('#sign-out');
    if (signOut) {
      signOut.addEventListener('click', async () => {
        const token = $('meta[name="csrf-token"]');
        await fetch('/v1/session/logout', {
          method: 'POST',
          credentials: 'same-origin',
          headers: { 'X-CSRF-Token': token ? token.content : '' },
        }).catch(() => null);
        location.assign('/');
      });
    }
    const form = $('#filters');
    if (form) setupFilters(form);
    const tbody = $('#rows');
    if (tbody) tbody.addEventListener('click', onTableClick);
    document.addEventListener('keydown', onKey);
    document.documentElement.dataset.ready = 'true';
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
