"""The app's settings store: QSettings (organisation and application `medview`, set by `create_app`; an INI
file under MEDVIEW_HOME once `configure_settings` ran: SPEC section 7). Only this module touches QSettings."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QByteArray, QSettings

from medview.core.home import home
from medview.core.settings import Settings


def configure_settings() -> None:
    """QSettings() anywhere means MEDVIEW_HOME/settings/medview/medview.ini (SPEC section 7)."""
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(home() / "settings"))


class QSettingsStore:
    """`medview.core.settings.KeyValueStore` over QSettings; Qt's byte arrays in and out as bytes."""

    def value(self, key: str) -> Any:
        value = QSettings().value(key)
        return value.data() if isinstance(value, QByteArray) else value

    def set_value(self, key: str, value: Any) -> None:
        QSettings().setValue(key, QByteArray(value) if isinstance(value, (bytes, bytearray)) else value)

    def remove(self, key: str) -> None:
        QSettings().remove(key)

    def child_keys(self, group: str) -> list[str]:
        settings = QSettings()
        settings.beginGroup(group)
        try:
            return list(settings.childKeys())
        finally:
            settings.endGroup()

    def sync(self) -> None:
        QSettings().sync()

    def file_name(self) -> str:
        return QSettings().fileName()


def app_settings() -> Settings:
    """The app's settings (stateless: every read goes to QSettings, so any number of these agree)."""
    return Settings(QSettingsStore())
