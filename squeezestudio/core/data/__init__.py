"""Data sets: preprocessing, built-in digits, image folders and CSV lists, robust decoding."""
