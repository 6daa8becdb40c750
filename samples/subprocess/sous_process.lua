-- Cours « Tâches parallèles » (CC-IN2P3), Sous-process : Syntaxe par l'exemple et montrant comment récupérer le stdout
--
-- Popen(command, shell=True, stdout=PIPE, stderr=PIPE), puis
-- communicate() qui attend la fin et renvoie (stdout, stderr). En Python
-- il faut stdout.decode("utf-8") : en Lua la sortie est déjà une chaîne
-- (des octets), on la découpe seulement en lignes comme split("\n"), dont
-- la dernière est vide. Le cas d'erreur, laissé « TOBEDONE » dans le
-- cours, affiche ici le stderr de l'enfant.
local subprocess = require "subprocess"
local Popen, PIPE = subprocess.Popen, subprocess.PIPE

-- str.split("\n") de Python : n+1 morceaux pour n séparateurs.
local function split(s, sep)
  local morceaux, debut = {}, 1
  while true do
    local i = s:find(sep, debut, true)
    if not i then break end
    morceaux[#morceaux + 1] = s:sub(debut, i - 1)
    debut = i + #sep
  end
  morceaux[#morceaux + 1] = s:sub(debut)
  return morceaux
end

local function run_sub_process()
  local command = "sleep 2; ls /tmp; echo 'BYE !'"

  local sub_process = Popen(command, {shell = true, stdout = PIPE, stderr = PIPE})

  local stdout, stderr = sub_process:communicate()
  if sub_process.returncode == 0 then
    -- get result from stdout (a stream of bytes)
    -- split to get a list
    local lines = split(stdout, "\n")
    for _, line in ipairs(lines) do
      print(line)
    end
  else
    -- get error message from stderr
    io.stderr:write(stderr)
  end
end

local function main()
  run_sub_process()
end

main()
