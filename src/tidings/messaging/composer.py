"""Composing messages: render a template for a contact, add tracking and the unsubscribe
headers, and DKIM-sign; in the loop's thread with the RSA steps in a thread pool, or in worker
processes (TIDINGS_SMTP_COMPOSE_PROCESSES) for machines with spare cores."""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr
from typing import Any

from cryptography.hazmat.primitives import serialization

from tidings.clock import SystemClock
from tidings.contacts.policy import MessageClass
from tidings.errors import ValidationFailed
from tidings.events.tokens import TrackingTokens
from tidings.messaging.compose import Headers, build_message
from tidings.messaging.dkim import DkimSigner
from tidings.messaging.links import LinkSigner
from tidings.messaging.models import EmailTemplate
from tidings.messaging.options import SenderOptions
from tidings.messaging.outbox_store import Job
from tidings.messaging.personal import reply_address
from tidings.messaging.service import source_of
from tidings.messaging.templates import CompiledTemplate, coupon_context
from tidings.messaging.tracking import TokenMaker, Tracker

MARKETING = frozenset({MessageClass.CAMPAIGN, MessageClass.AUTOMATION})


@dataclass(frozen=True)
class TemplateSpec:
    """A picklable copy of what composing needs from a template (for worker processes)."""

    id: int
    updated_at: datetime
    subject: str
    html: str
    text: str | None
    variables: dict[str, Any]
    track_opens: bool
    track_clicks: bool

    @classmethod
    def of(cls, t: EmailTemplate) -> TemplateSpec:
        return cls(
            t.id,
            t.updated_at,
            t.subject,
            t.html,
            t.text,
            dict(t.variables or {}),
            t.track_opens,
            t.track_clicks,
        )


_PROCESS_COMPOSER: Composer | None = None


def _init_process_composer(options: SenderOptions, dkim_pem: bytes | None, tracking: bool) -> None:
    """Runs once in each compose process."""
    global _PROCESS_COMPOSER
    if dkim_pem is not None and options.dkim_domain_selector is not None:
        domain, selector = options.dkim_domain_selector
        options = dataclasses.replace(options, dkim=DkimSigner.from_pem(domain, selector, dkim_pem))
    tokens = TrackingTokens(options.secret, clock=SystemClock()) if tracking else None
    _PROCESS_COMPOSER = Composer(options, tokens)


def _compose_in_process(
    jobs: Sequence[Job], templates: dict[int, TemplateSpec], now: datetime
) -> list[bytes | str]:
    """A chunk of messages, each signed, or the reason it cannot be rendered."""
    assert _PROCESS_COMPOSER is not None
    return [_composed(_PROCESS_COMPOSER.compose, job, templates, now) for job in jobs]


def _composed(
    compose: Callable[[Job, Any, datetime], bytes],
    job: Job,
    templates: Mapping[int, Any],
    now: datetime,
) -> bytes | str:
    """The message `compose` makes for `job`, or the reason it cannot be rendered."""
    try:
        return compose(job, templates[job.template_id], now)
    except (ValidationFailed, KeyError) as exc:
        return str(exc)


def _rsa_sign_all(dkim: DkimSigner, to_sign: Sequence[bytes]) -> list[bytes]:
    """One pool call signs a whole chunk: the RSA steps release the GIL; a call per message
    cost more in thread hand-offs than the signing itself."""
    return [dkim.rsa_sign(blob) for blob in to_sign]


def _process_pool(options: SenderOptions, tracking: bool) -> ProcessPoolExecutor:
    dkim = options.dkim
    pem = None
    picklable = dataclasses.replace(options, dkim=None, dkim_domain_selector=None)
    if dkim is not None:
        pem = dkim.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        picklable = dataclasses.replace(
            picklable, dkim_domain_selector=(dkim.domain, dkim.selector)
        )
    return ProcessPoolExecutor(
        max_workers=options.compose_processes,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_process_composer,
        initargs=(picklable, pem, tracking),
    )


class Composer:
    def __init__(self, options: SenderOptions, tokens: TokenMaker | None) -> None:
        self.options = options
        self.links = LinkSigner(options.secret, options.base_url)
        self.tracker = Tracker(tokens, options.base_url) if tokens is not None else None
        self.from_address = parseaddr(options.mail_from)[1]
        self.from_domain = self.from_address.rpartition("@")[2] or "localhost"
        self._compiled: dict[tuple[int, datetime], CompiledTemplate] = {}

    def compiled(self, template: EmailTemplate | TemplateSpec) -> CompiledTemplate:
        key = (template.id, template.updated_at)
        found = self._compiled.get(key)
        if found is None:
            found = self._compiled[key] = CompiledTemplate(source_of(template))  # type: ignore[arg-type]
        return found

    def return_path(self, job: Job) -> str:
        if self.options.bounce_domain:
            return f"bounce+{job.token}@{self.options.bounce_domain}"
        return self.from_address

    def compose(self, job: Job, template: EmailTemplate | TemplateSpec, now: datetime) -> bytes:
        data = self.compose_unsigned(job, template, now)
        if self.options.dkim is not None:
            data = self.options.dkim.sign(data, timestamp=int(now.timestamp()))
        return data

    def compose_unsigned(
        self, job: Job, template: EmailTemplate | TemplateSpec, now: datetime
    ) -> bytes:
        marketing = job.message_class in MARKETING
        compiled = self.compiled(template)
        unsubscribe = self.links.unsubscribe_url(job.contact_id, job.token)  # the header's
        links = {"unsubscribe_url": unsubscribe}
        if "preferences_url" in compiled.names:  # a signed token: only when it is shown
            links["preferences_url"] = self.links.preferences_url(job.contact_id)
        context = {**job.context, **links, "contact": job.contact}
        if "coupon" in compiled.names:
            context["coupon"] = coupon_context(job.contact)
        rendered = compiled.render(context)
        html = rendered.html
        if self.tracker is not None:
            html = self.tracker.apply(
                html,
                contact_id=job.contact_id,
                message_id=job.token,
                opens=template.track_opens,
                clicks=template.track_clicks,
                keep=set(links.values()) | {job.context.get("confirm_url", "")},
            )
        list_unsubscribe: list[str] = []
        if marketing:
            list_unsubscribe.append(unsubscribe)
            if self.options.unsubscribe_mailto:
                list_unsubscribe.append(
                    f"mailto:{self.options.unsubscribe_mailto}?subject=unsubscribe-{job.token}"
                )
        from_, reply_to = self.options.mail_from, None
        if job.message_class == MessageClass.PERSONAL:
            # Sent as the user who wrote it; replies go to the inbound domain, where they are
            # matched to this message (tidings.deals.emails).
            from_ = str(job.context.get("from") or from_)
            if self.options.bounce_domain:
                reply_to = reply_address(job.token, self.options.bounce_domain)
        headers = Headers(
            from_=from_,
            to=job.email,
            subject=rendered.subject,
            date=now,
            message_id=f"{job.token}@{self.from_domain}",
            list_unsubscribe=list_unsubscribe,
            one_click=marketing,
            reply_to=reply_to,
        )
        return build_message(headers, html, rendered.text)


def _then(
    future: asyncio.Future[list[bytes]], then: Callable[[list[bytes]], list[bytes | str]]
) -> asyncio.Future[list[bytes | str]]:
    """A future of `then(result)`, without a task."""
    after: asyncio.Future[list[bytes | str]] = asyncio.get_running_loop().create_future()

    def done(source: asyncio.Future[list[bytes]]) -> None:
        if after.cancelled():
            return
        if source.cancelled():
            after.cancel()
        elif (error := source.exception()) is not None:
            after.set_exception(error)
        else:
            try:
                after.set_result(then(source.result()))
            except Exception as exc:
                after.set_exception(exc)

    future.add_done_callback(done)
    return after


class ComposePool:
    """Composes a batch a chunk at a time, for the pipeline: in the loop's thread with the RSA
    steps in a thread pool, or (compose_processes > 0) whole chunks in worker processes."""

    def __init__(self, options: SenderOptions, tokens: TokenMaker | None) -> None:
        self.composer = Composer(options, tokens)
        self.pool: Executor
        if options.compose_processes > 0:
            self.pool = _process_pool(options, tracking=tokens is not None)
        else:
            self.pool = ThreadPoolExecutor(
                max_workers=max(2, min(options.connections, os.cpu_count() or 2)),
                thread_name_prefix="tidings-compose",
            )

    def close(self) -> None:
        self.pool.shutdown(wait=False)

    async def chunk(
        self, jobs: Sequence[Job], templates: dict[int, EmailTemplate], now: datetime
    ) -> asyncio.Future[list[bytes | str]]:
        """Compose a chunk but for its signatures; the future's result is each message, or why
        it cannot be rendered.

        Threads: rendering runs here in the loop's thread (a hop to a thread would wait for
        the GIL), and only the RSA steps, which release the GIL, go to the pool, one call per
        chunk. Processes: the whole chunk is composed in a worker process.
        """
        loop = asyncio.get_running_loop()
        if isinstance(self.pool, ProcessPoolExecutor):
            specs = {i: TemplateSpec.of(t) for i, t in templates.items()}
            return loop.run_in_executor(self.pool, _compose_in_process, jobs, specs, now)
        composed: list[bytes | str] = []
        for job in jobs:
            composed.append(_composed(self.composer.compose_unsigned, job, templates, now))
            # Let the replies that came in meanwhile be handled: the server then works on
            # the next command while this loop renders the next message.
            await asyncio.sleep(0)
        dkim = self.composer.options.dkim
        if dkim is None:
            done: asyncio.Future[list[bytes | str]] = loop.create_future()
            done.set_result(composed)
            return done
        timestamp = int(now.timestamp())
        prepared = [
            dkim.prepare(data, timestamp=timestamp) if isinstance(data, bytes) else None
            for data in composed
        ]
        signing = loop.run_in_executor(
            self.pool, _rsa_sign_all, dkim, [p[1] for p in prepared if p is not None]
        )

        def finish(signatures: list[bytes]) -> list[bytes | str]:
            signed = iter(signatures)
            return [
                dkim.finish(data, p[0], next(signed))
                if isinstance(data, bytes) and p is not None
                else data
                for data, p in zip(composed, prepared, strict=True)
            ]

        return _then(signing, finish)
