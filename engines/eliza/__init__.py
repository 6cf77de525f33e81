"""Weizenbaum's 1966 ELIZA: an interpreter for his script language, and DOCTOR scripts as data.

tokens.py splits a message into words; keystack.py finds the clause and its keywords;
pattern.py decomposes and reassembles; memory.py keeps the MEMORY queue; interpreter.py ties
them together for one reply; script.py + parser.py read the scripts under scripts/.
"""
