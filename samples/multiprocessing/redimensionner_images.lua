--[[
Cours « 8.1 Threading et multiprocessing », Exercice 2 : Processeur
d'images parallèle.

The course resizes every image of a folder with PIL (Image.resize with the
LANCZOS filter) in a multiprocessing.Pool, writing thumb_<name> files to a
"redimensionnees" subfolder. Without PIL, this sample:

  * makes its own images: PPM/PGM files (the simplest image formats: a
    short text header, then the raw bytes of the pixels), drawn in Lua
    into a temporary folder (or the folder given on the command line,
    which is then kept), plus one broken file for the error branch;
  * resizes them in pure Lua with a Lanczos filter (a = 3, as PIL's
    LANCZOS), so the work is CPU-bound as PIL's is;
  * does it three times: one image after the other, in a thread pool, and
    in a process Pool as the course does, and prints the times. Threads
    take turns on the GIL: no faster. Processes have a GIL each: about 2x
    on 2 cores. The "cœurs" column is the CPU time used (by this process,
    its threads and its finished children) divided by the elapsed time:
    how many cores computed at once, on average (at most 1 for threads).

PIL releases the GIL while it resizes (it is a C extension), so in Python
threads would help too; pure Lua code, like pure Python code, cannot.

    gilua samples/multiprocessing/redimensionner_images.lua [dossier]
]]
local multiprocessing = require "multiprocessing"
local futures = require "concurrent.futures"
local subprocess = require "subprocess"
local time = require "time"

local NB_IMAGES = 8
local LARGEUR, HAUTEUR = 320, 240
local TAILLE_CIBLE = {80, 60}              -- (800, 600) dans le cours

-- os.path, os.makedirs, os.listdir -------------------------------------------

local function basename(chemin) return chemin:match("[^/]*$") end
local function join(a, b) return a .. "/" .. b end
local function makedirs(chemin)
  subprocess.run({"mkdir", "-p", chemin}, {check = true})
end
local function listdir(chemin)
  local r = subprocess.run({"ls", "-1", chemin}, {capture_output = true, check = true})
  local noms = {}
  for nom in r.stdout:gmatch("[^\n]+") do noms[#noms + 1] = nom end
  return noms
end

-- PPM (P6, RGB) and PGM (P5, grey) files ----------------------------------------

-- An image: {largeur, hauteur, canaux, pixels}, the pixels a flat array of
-- numbers (0-255), row by row, channel by channel.
local function lire_image(chemin)
  local f = assert(io.open(chemin, "rb"))
  local donnees = f:read("a")
  f:close()
  local magique, l, h, max, debut = donnees:match("^(P[56])%s+(%d+)%s+(%d+)%s+(%d+)%s()")
  if not magique or tonumber(max) ~= 255 then
    error("cannot identify image file '" .. basename(chemin) .. "'", 0)
  end
  l, h = tonumber(l), tonumber(h)
  local canaux = magique == "P6" and 3 or 1
  local n = l * h * canaux
  if #donnees - debut + 1 < n then
    error("image file is truncated ('" .. basename(chemin) .. "')", 0)
  end
  local pixels = {}
  local ligne = l * canaux
  for y = 0, h - 1 do
    local octets = {donnees:byte(debut + y * ligne, debut + (y + 1) * ligne - 1)}
    table.move(octets, 1, ligne, y * ligne + 1, pixels)
  end
  return {largeur = l, hauteur = h, canaux = canaux, pixels = pixels}
end

local function ecrire_image(chemin, img)
  local f = assert(io.open(chemin, "wb"))
  f:write(("%s\n%d %d\n255\n"):format(img.canaux == 3 and "P6" or "P5", img.largeur, img.hauteur))
  local ligne = img.largeur * img.canaux
  for y = 0, img.hauteur - 1 do
    f:write(string.char(table.unpack(img.pixels, y * ligne + 1, (y + 1) * ligne)))
  end
  f:close()
end

-- Lanczos resampling (a = 3), one direction at a time ------------------------------

local A = 3
local function sinc(x)
  if x == 0 then return 1 end
  x = x * math.pi
  return math.sin(x) / x
end
local function lanczos(x)
  if x <= -A or x >= A then return 0 end
  return sinc(x) * sinc(x / A)
end

-- For each of the `m` output positions along an axis of `n` input pixels:
-- the first input pixel it reads and the weights of the pixels from there.
local function poids(n, m)
  local echelle = n / m
  local etendue = math.max(echelle, 1)       -- when shrinking, the filter widens
  local table_poids = {}
  for o = 0, m - 1 do
    local centre = (o + 0.5) * echelle - 0.5
    local premier = math.floor(centre - A * etendue) + 1
    local dernier = math.floor(centre + A * etendue)
    local w, somme = {}, 0
    for i = premier, dernier do
      local v = lanczos((i - centre) / etendue)
      w[#w + 1] = v
      somme = somme + v
    end
    for k = 1, #w do w[k] = w[k] / somme end
    table_poids[o] = {premier = premier, w = w}
  end
  return table_poids
end

local function borne(v)
  if v < 0 then return 0 elseif v > 255 then return 255 end
  return math.floor(v + 0.5)
end

-- Resizes `img` to l2 x h2: along the rows first, then along the columns.
local function redimensionner(img, l2, h2)
  local l, h, c = img.largeur, img.hauteur, img.canaux
  local px = img.pixels
  -- horizontal: l x h -> l2 x h
  local ph, tmp = poids(l, l2), {}
  for y = 0, h - 1 do
    local base = y * l * c
    for o = 0, l2 - 1 do
      local p = ph[o]
      for k = 0, c - 1 do
        local s = 0
        for j, w in ipairs(p.w) do
          local x = p.premier + j - 1
          if x < 0 then x = 0 elseif x >= l then x = l - 1 end
          s = s + w * px[base + x * c + k + 1]
        end
        tmp[(y * l2 + o) * c + k + 1] = s
      end
    end
  end
  -- vertical: l2 x h -> l2 x h2
  local pv, out = poids(h, h2), {}
  for o = 0, h2 - 1 do
    local p = pv[o]
    for x = 0, l2 - 1 do
      for k = 0, c - 1 do
        local s = 0
        for j, w in ipairs(p.w) do
          local y = p.premier + j - 1
          if y < 0 then y = 0 elseif y >= h then y = h - 1 end
          s = s + w * tmp[(y * l2 + x) * c + k + 1]
        end
        out[(o * l2 + x) * c + k + 1] = borne(s)
      end
    end
  end
  return {largeur = l2, hauteur = h2, canaux = c, pixels = out}
end

-- The course's functions ------------------------------------------------------------

-- Redimensionne une image (fonction pour multiprocessing).
local function redimensionner_image(info_image)
  local chemin_entree, chemin_sortie, taille = info_image[1], info_image[2], info_image[3]
  local ok, err = pcall(function()
    -- Ouvrir et redimensionner l'image
    local img = lire_image(chemin_entree)
    ecrire_image(chemin_sortie, redimensionner(img, taille[1], taille[2]))
  end)
  if ok then
    return ("✅ %s → (%d, %d)"):format(basename(chemin_entree), taille[1], taille[2])
  end
  return ("❌ %s: %s"):format(basename(chemin_entree), tostring(err))
end

-- The tasks for every image of the folder, as the course makes them.
local function preparer_taches(dossier_images, taille_cible)
  local taches = {}
  local dossier_sortie = join(dossier_images, "redimensionnees")
  makedirs(dossier_sortie)
  for _, fichier in ipairs(listdir(dossier_images)) do
    local ext = fichier:lower():match("%.(%w+)$")
    if ext == "ppm" or ext == "pgm" then
      taches[#taches + 1] = {join(dossier_images, fichier),
                             join(dossier_sortie, "thumb_" .. fichier), taille_cible}
    end
  end
  return taches
end

-- CPU seconds used by this process (all its threads) and by its children
-- once joined: time.process_time() plus cutime and cstime from
-- /proc/self/stat (Linux; in clock ticks, 100 a second).
local function temps_cpu()
  local f = io.open("/proc/self/stat")
  local champs = {}
  if f then
    for v in f:read("a"):match("%) (.*)$"):gmatch("%S+") do champs[#champs + 1] = v end
    f:close()
  end
  local ticks = (tonumber(champs[14]) or 0) + (tonumber(champs[15]) or 0)
  return time.process_time() + ticks / 100
end

-- Three ways to run redimensionner_image over the tasks.
local FACONS = {
  {"séquentiel", function(taches)
    local resultats = {}
    for i, t in ipairs(taches) do resultats[i] = redimensionner_image(t) end
    return resultats
  end},
  {"2 threads", function(taches)
    local pool <close> = futures.ThreadPoolExecutor{max_workers = 2}
    return pool:map(redimensionner_image, taches)
  end},
  {"Pool (processus)", function(taches)
    local pool <close> = multiprocessing.Pool()
    return pool:map(redimensionner_image, taches)
  end},
}

-- Traite toutes les images d'un dossier, des trois façons.
local function traiter_images_parallele(dossier_images, taille_cible)
  local taches = preparer_taches(dossier_images, taille_cible)
  if #taches == 0 then
    print("❌ Aucune image trouvée")
    return
  end
  print(("🖼️ Traitement de %d images..."):format(#taches))
  local temps, coeurs = {}, {}
  for i, f in ipairs(FACONS) do
    local t0, c0 = time.perf_counter(), temps_cpu()
    local resultats = f[2](taches)
    temps[i] = time.perf_counter() - t0
    coeurs[i] = (temps_cpu() - c0) / temps[i]
    if i == #FACONS then
      -- Afficher les résultats (ceux du Pool, comme le cours)
      for _, resultat in ipairs(resultats) do print("  " .. resultat) end
    end
  end
  print()
  print(("%-18s %8s %6s %6s"):format("", "temps", "", "cœurs"))
  for i, f in ipairs(FACONS) do
    print(("%-18s %6.2f s  %4.1fx  %5.2f"):format(f[1], temps[i], temps[1] / temps[i], coeurs[i]))
  end
end

-- Test images -------------------------------------------------------------------------

-- Draws image `i`: colour gradients and rings (and every third one grey),
-- so that resizing has something to smooth.
local function creer_image(chemin, i)
  local c = (i % 3 == 0) and 1 or 3
  local px = {}
  local cx, cy = LARGEUR * (0.3 + 0.05 * i), HAUTEUR * 0.5
  for y = 0, HAUTEUR - 1 do
    for x = 0, LARGEUR - 1 do
      local d = math.sqrt((x - cx) ^ 2 + (y - cy) ^ 2)
      local anneau = (d // (6 + i)) % 2 == 0 and 60 or 0
      local base = (y * LARGEUR + x) * c
      if c == 1 then
        px[base + 1] = (x * 255 // LARGEUR + anneau) % 256
      else
        px[base + 1] = (x * 255 // LARGEUR + anneau) % 256
        px[base + 2] = (y * 255 // HAUTEUR + 20 * i) % 256
        px[base + 3] = (anneau * 3 + 40 * i) % 256
      end
    end
  end
  ecrire_image(chemin, {largeur = LARGEUR, hauteur = HAUTEUR, canaux = c, pixels = px})
end

if __name__ == "__main__" then
  local dossier = arg and arg[1]
  local temporaire = dossier == nil
  if temporaire then
    dossier = os.tmpname()
    os.remove(dossier)
  end
  makedirs(dossier)
  for i = 1, NB_IMAGES do
    creer_image(join(dossier, ("photo_%02d.%s"):format(i, i % 3 == 0 and "pgm" or "ppm")), i)
  end
  local f = assert(io.open(join(dossier, "cassee.ppm"), "wb"))
  f:write("pas une image")
  f:close()
  print(("%d images de %dx%d (et un fichier cassé) dans %s"):format(NB_IMAGES, LARGEUR, HAUTEUR, dossier))

  traiter_images_parallele(dossier, TAILLE_CIBLE)

  if temporaire then subprocess.run({"rm", "-r", dossier}) end
end
