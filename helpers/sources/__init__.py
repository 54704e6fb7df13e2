"""Sample libraries as data: fetching them, reading their recordings, finding shared ones.

The demo set can be rendered from several sample libraries (SoundFonts, GUS patches, folders of
sample files), some shipped inside pip packages and some inside Debian packages. This
subpackage sits in the data layer: it imports ``helpers.paths``, ``helpers.files``,
``helpers.progress`` and ``helpers.download`` (for its error classes), never a module above.

- :mod:`helpers.sources.debian`: pinned Debian packages fetched with their SHA256 and unpacked
  in Python (no root, no apt);
- :mod:`helpers.sources.sf2`: SoundFont 2 files read (presets, instruments, sample data) and
  written (a small SoundFont from sample arrays);
- :mod:`helpers.sources.gus`: Gravis UltraSound ``.pat`` patches and timidity configurations read;
- :mod:`helpers.sources.libraries`: the seven libraries, and SoundFonts built from patches and
  sample files;
- :mod:`helpers.sources.dedup`: recordings shared between libraries, found by fingerprinting
  sample data; duplicates dropped, shared voices marked.
"""
