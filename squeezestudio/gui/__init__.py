"""The Qt desktop front end: thin views over :class:`~squeezestudio.core.session.studio_session.StudioSession`.

Qt modules are named ``qt_*.py`` and their classes ``Qt*``. Nothing is imported
here, so ``import squeezestudio.gui`` stays cheap; start the app with
:func:`squeezestudio.gui.app.run_gui`.
"""
