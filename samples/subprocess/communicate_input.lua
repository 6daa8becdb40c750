-- Cours « Concurrence avancée » 20.7 subprocess — lancer des commandes : Communication
--
-- Popen(..., stdin=PIPE, stdout=PIPE, text=True) puis
-- communicate(input="hello\n") : on écrit dans l'entrée de l'enfant, on lit
-- sa sortie, et on l'attend ; communicate renvoie deux valeurs (stdout,
-- stderr), ici stderr est nil (None).
--
-- L'enfant du cours est `python3 -c "print(input()*2)"`. Il devient ici
-- un enfant gilua, `gilua -e 'print(io.read("l"):rep(2))'` (la même chose
-- en Lua), lancé avec l'interpréteur qui exécute cet exemple : l'exemple
-- ne dépend ainsi que de gilua, démarre un enfant en quelques
-- millisecondes au lieu de plusieurs dizaines, et montre au passage un
-- gilua qui en pilote un autre.
local subprocess = require "subprocess"

-- L'interpréteur qui nous exécute (sys.executable en Python) : l'indice
-- le plus bas de `arg` est la commande telle qu'elle a été lancée.
local function interpreteur()
  local i = 0
  while arg and arg[i - 1] ~= nil do i = i - 1 end
  return (arg and i < 0) and arg[i] or "gilua"
end

local proc = subprocess.Popen(
  {interpreteur(), "-e", 'print(io.read("l"):rep(2))'},
  {stdin = subprocess.PIPE, stdout = subprocess.PIPE, text = true}
)
local stdout, _ = proc:communicate("hello\n")
io.write(stdout)  -- hellohello\n (print ajouterait un second saut de ligne,
                  -- comme le print(stdout) du cours)
