"""The Studio: the web page served at /studio (vanilla JS modules and CSS, no build step)."""
