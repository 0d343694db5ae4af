"""Sessions read from the cache and written through to the database (Django's ``cached_db``),
that keep working while the cache is down: the database holds every session, so a request
then reads it from there (and the health page can say the cache is unreachable)."""

import contextlib

from django.contrib.sessions.backends import cached_db


class SessionStore(cached_db.SessionStore):
    def load(self):
        try:
            data = self._cache.get(self.cache_key)
        except Exception:  # the cache is down (or refused the key): the database has it
            data = None
        if data is not None:
            return data
        stored = self._get_session_from_db()
        if not stored:
            return {}
        data = self.decode(stored.session_data)
        with contextlib.suppress(Exception):
            self._cache.set(self.cache_key, data, self.get_expiry_age(expiry=stored.expire_date))
        return data

    def exists(self, session_key):
        with contextlib.suppress(Exception):
            if session_key and (self.cache_key_prefix + session_key) in self._cache:
                return True
        return super(cached_db.SessionStore, self).exists(session_key)

    def delete(self, session_key=None):
        key = session_key or self.session_key
        if key is not None:
            with contextlib.suppress(Exception):
                self._cache.delete(self.cache_key_prefix + key)
        super(cached_db.SessionStore, self).delete(session_key)
