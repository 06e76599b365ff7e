"""``crmbot keys generate|status|rotate|reindex``: encryption at rest and its keys."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from bot.cli import common
from bot.cli.common import JsonOpt

keys_app = typer.Typer(no_args_is_help=True, help="Encryption keys: make, inspect, rotate.")


@keys_app.command("generate")
def keys_generate(json_out: JsonOpt = False) -> None:
    """Print a new encryption key. Put it first in CRM_ENCRYPTION_KEYS (keep the old keys
    after it until `crmbot keys rotate` is done), then run `crmbot keys rotate`."""
    from crm import crypto

    key = crypto.generate_key()
    if json_out:
        common.emit_json({"key": key, "key_id": crypto.key_id(key)})
        return
    common.console.print(key, highlight=False, soft_wrap=True)
    common.err_console.print(f"key id {crypto.key_id(key)}", highlight=False)


@keys_app.command("status")
def keys_status(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """The keys set, and how many values of each encrypted column are under which key."""
    from crm import crypto
    from crm.services import keys as keys_svc

    state = common.state(ctx)
    ring = crypto.keyring()
    with state.db.session() as session:
        columns = keys_svc.status(session)
    plain = sum(c.plain for c in columns)
    old = sum(n for c in columns for k, n in c.by_key.items() if ring is None or k != ring.primary)
    if json_out:
        common.emit_json(
            {
                "encrypted": ring is not None,
                "first_key": ring.primary if ring else None,
                "keys": ring.ids if ring else [],
                "plain": plain,
                "under_other_keys": old,
                "columns": [
                    {"column": c.column, "plain": c.plain, "by_key": c.by_key} for c in columns
                ],
            }
        )
        return
    out = common.console
    if ring is None:
        out.print(f"not encrypted: {crypto.NOT_ENCRYPTED_WARNING}", highlight=False)
    else:
        out.print(
            f"keys: {', '.join(ring.ids)} (the first, {ring.primary}, encrypts)", highlight=False
        )
    common.table(
        "Encrypted columns",
        ["column", "plain", "by key"],
        [
            [
                c.column,
                c.plain,
                ", ".join(f"{k}: {n:,}" for k, n in sorted(c.by_key.items())) or "-",
            ]
            for c in columns
        ],
    )
    if ring is not None and (plain or old):
        out.print(
            f"{plain + old:,} values are not under the first key: run `crmbot keys rotate`",
            highlight=False,
        )
    elif ring is not None:
        out.print("every value is under the first key; older keys can be removed", highlight=False)


@keys_app.command("rotate")
def keys_rotate(
    ctx: typer.Context,
    batch: Annotated[
        int | None,
        typer.Option(min=1, show_default=False, help="Values per transaction [default: 5,000]."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Encrypt every value under the first key of CRM_ENCRYPTION_KEYS (admins): plain values
    are encrypted, values under older keys re-encrypted. In batches, each its own transaction,
    while crmbot runs; stopped, it goes on where it was when run again."""
    from crm.services import keys as keys_svc

    state = common.state(ctx)
    started = time.perf_counter()
    rewritten: dict[str, int] = {}
    skipped = 0
    batch = batch or keys_svc.ROTATE_BATCH
    for done in keys_svc.rotate(state.db.transaction, actor_for=state.actor, batch=batch):
        rewritten[done.column] = rewritten.get(done.column, 0) + done.rewritten
        skipped += done.skipped
        if not json_out and state.verbose:
            common.err_console.print(f"{done.column}: {rewritten[done.column]:,}", highlight=False)
    seconds = time.perf_counter() - started
    total = sum(rewritten.values())
    if json_out:
        common.emit_json(
            {
                "rewritten": total,
                "by_column": rewritten,
                "skipped": skipped,
                "seconds": round(seconds, 2),
            }
        )
        return
    common.console.print(
        f"{total:,} values encrypted under the first key in {seconds:.1f}s"
        + (f" ({skipped:,} changed meanwhile, already under it)" if skipped else ""),
        highlight=False,
    )


@keys_app.command("reindex")
def keys_reindex(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Recompute the keyed hashes contact lookups use (after CRM_HMAC_KEY changed; admins)."""
    from crm.services import keys as keys_svc

    state = common.state(ctx)
    changed, after = 0, 0
    while True:
        with state.write() as (session, actor):
            n, last = keys_svc.reindex_batch(session, actor=actor, after=after)
        changed += n
        if last is None:
            break
        after = last
    if json_out:
        common.emit_json({"changed": changed})
        return
    common.console.print(f"{changed:,} contact hashes recomputed", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
