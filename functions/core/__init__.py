"""Cross-cutting pieces every part of CityShare's Lambda code uses: settings, AWS clients, errors."""
